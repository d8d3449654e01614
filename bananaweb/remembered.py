"""A process's memory of its last values: rendered HTML (fragments.py) and
compiled SQL (compiled.py), bounded, shared by the worker threads."""

import threading
from collections import OrderedDict


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
