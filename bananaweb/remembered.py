"""A process's memory of its last values: rendered HTML (fragments.py) and
compiled SQL (compiled.py), bounded, shared by the worker threads."""

import hashlib
import threading
from collections import OrderedDict


def digest(shown: object) -> str:
    """A key naming exactly what `shown` holds (its repr): what a remembered
    value was made of."""
    return hashlib.blake2b(repr(shown).encode(), digest_size=16).hexdigest()


class Remembered:
    """A process's last `size` values by key (the least recently used goes
    first); its worker threads share it."""

    def __init__(self, size: int):
        self.size = size
        self._values: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
