"""`python -m bananaweb.simulator`: serve the simulator until interrupted.

Every knob (see `knobs`, or `--help`) can be set with a flag or a
MOUNTSEA_SIMULATOR_<KNOB> variable; flags win. Valid tokens are those starting
with `sim-`, unless --tokens (or MOUNTSEA_SIMULATOR_TOKENS) lists them.
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
        epilog="Prompt tags set knobs for one request: [sim:fail], [sim:503], "
        "[sim:result-503], [sim:image-503], [sim:no_image], [sim:fast]; see "
        "bananaweb/simulator/knobs.py. GET /_simulator/stats counts calls and "
        "accepted tasks; POST /_simulator/reset clears them.",
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
        choices = knobs.CHOICES.get(name)
        allowed = f" ({', '.join(str(c) for c in choices)})" if choices else ""
        parser.add_argument(
            "--" + name.replace("_", "-"),
            metavar="VALUE",
            help=f"{knobs.HELP[name]}{allowed}; default: {default}; "
            f"or set {ENV_PREFIX}{name.upper()}",
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
