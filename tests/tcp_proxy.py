"""A TCP proxy on loopback that tests open, close and freeze, to cut a service off.

    proxy = TcpProxy("127.0.0.1", 5432)   # listening on 127.0.0.1:proxy.port
    proxy.close()                         # new connections refused, open ones cut
    proxy.open()                          # the same port accepts again
    proxy.freeze_after(3)                 # 3 more client writes pass, then nothing
    proxy.frozen.wait(5)                  # ... until close()

Freezing stops a client at a chosen point of its conversation (its n-th write,
e.g. one database query), to kill it there. Threads only: one accepting, two per
connection copying bytes each way.
"""

import socket
import threading
import time
from typing import Self

ACCEPT_POLL_SECONDS = 0.05
HOLD_POLL_SECONDS = 0.05
CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.frozen = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._stop_accepting = threading.Event()
        self._writes_left: int | None = None  # None: no freeze armed
        self.client_writes = 0  # relayed from clients to the server, ever
        self.held = b""  # the client write that froze the proxy
        self.open()

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    def open(self) -> None:
        """Listen (again, on the same port) and relay every connection."""
        if self.is_open:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(ACCEPT_POLL_SECONDS)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stop_accepting = threading.Event()
        self._accepting = threading.Thread(
            target=self._accept, args=(listener, self._stop_accepting), daemon=True
        )
        self._accepting.start()

    def close(self) -> None:
        """Refuse new connections (nothing listens), cut the open ones, unfreeze."""
        if not self.is_open:
            return
        self._stop_accepting.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _shut(sock)
        # Only now: what was held must die with its connection, never go through.
        with self._lock:
            self._writes_left = None
            self.frozen.clear()

    def freeze_after(self, writes: int) -> None:
        """Relay `writes` more client-to-server writes, then hold all traffic, both
        ways, on every connection (the frozen event is set) until close()."""
        with self._lock:
            self._writes_left = writes
            self.held = b""
            self.frozen.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept(self, listener: socket.socket, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _shut(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if stopping.is_set():
                    _shut(client)
                    _shut(upstream)
                    return
                self._sockets |= {client, upstream}
            for source, destination, to_server in (
                (client, upstream, True),
                (upstream, client, False),
            ):
                threading.Thread(
                    target=self._pipe,
                    args=(source, destination, to_server),
                    daemon=True,
                ).start()

    def _may_relay(self, data: bytes, to_server: bool) -> bool:
        with self._lock:
            if self.frozen.is_set():
                return False
            if to_server and self._writes_left is not None:
                if self._writes_left == 0:
                    self.held = data
                    self.frozen.set()
                    return False
                self._writes_left -= 1
            self.client_writes += to_server
            return True

    def _pipe(
        self, source: socket.socket, destination: socket.socket, to_server: bool
    ) -> None:
        try:
            while data := source.recv(CHUNK):
                # Held while frozen; close() shuts the sockets, which ends the wait.
                while not self._may_relay(data, to_server):
                    if destination.fileno() == -1:
                        return
                    time.sleep(HOLD_POLL_SECONDS)
                destination.sendall(data)
        except OSError:
            pass
        finally:
            # One side ended: end both, so neither end waits on a half-open one.
            with self._lock:
                self._sockets -= {source, destination}
            _shut(source)
            _shut(destination)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
