"""`python -m bananaweb.simulator`: serve the simulator until interrupted.

Every knob can be set with a flag or a MOUNTSEA_SIMULATOR_<KNOB> variable; flags
win. Valid tokens are those starting with `sim-`, unless --tokens (or
MOUNTSEA_SIMULATOR_TOKENS) lists them.
"""

import argparse
import os

from bananaweb.simulator import knobs
from bananaweb.simulator.server import make_server

ENV_PREFIX = "MOUNTSEA_SIMULATOR_"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, dict]:
    """The parsed flags, and the knobs they and the environment set."""
    parser = argparse.ArgumentParser(
        prog="python -m bananaweb.simulator",
        description="Serve a simulated Mountsea Nano Banana API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--tokens",
        default=os.environ.get(ENV_PREFIX + "TOKENS", ""),
        help="comma-separated valid tokens (default: any starting with sim-)",
    )
    parser.add_argument("--quiet", action="store_true", help="don't log requests")
    for name, default in knobs.DEFAULTS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            metavar="VALUE",
            help=f"default: {default}; or set {ENV_PREFIX}{name.upper()}",
        )
    args = parser.parse_args(argv)

    config = {}
    for name in knobs.DEFAULTS:
        text = getattr(args, name)
        if text is None:
            text = os.environ.get(ENV_PREFIX + name.upper())
        if text is not None:
            config[name] = knobs.from_text(name, text)
    if errors := knobs.knob_errors(config):
        parser.error(" ".join(errors.values()))
    return args, config


def main(argv: list[str] | None = None) -> None:
    args, config = parse_args(argv)
    tokens = [token.strip() for token in args.tokens.split(",") if token.strip()]
    server = make_server(
        args.host, args.port, tokens=tokens, quiet=args.quiet, **config
    )
    print(f"Simulator listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
