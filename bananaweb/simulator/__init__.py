"""A stand-in for the Mountsea Nano Banana API, for development, demos and tests.

It speaks the contract in shared/contracts/mountsea-openapi.yaml, draws simple
PNGs, and misbehaves on request (see `knobs`). Run it with
`python -m bananaweb.simulator`, or from tests with `start_simulator()`.
"""

from bananaweb.simulator.server import SimulatorHandle, start_simulator

__all__ = ["SimulatorHandle", "start_simulator"]
