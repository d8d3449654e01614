"""Fetching URLs that came from outside: upstream result images, users' image_urls.

`fetch` is the only way bananaweb downloads such a URL. It speaks http(s) only,
is bounded in time and size, follows at most three redirects by hand, checking
every hop again, and never connects to a private network address (no SSRF into
the server's own network) unless the URL's exact origin is trusted.
"""

import ipaddress
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import idna
import requests
import urllib3
from requests.adapters import HTTPAdapter

MAX_REDIRECTS = 3
CONNECT_TIMEOUT = 10
CHUNK_SIZE = 64 * 1024
MAX_ADDRESSES_TRIED = 3
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "bananaweb (+image fetcher)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


# Answers that say "not now" rather than "never".
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchError(Exception):
    """Why a URL couldn't be fetched, as a sentence for a person.

    `transient` when trying again later may work (a timeout, a broken connection,
    a 5xx or 429 answer); not for an answer that will not change (too large, not
    an image, a private address).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Fetched:
    content: bytes
    content_type: str  # the media type alone, lowercased: "image/png"
    url: str  # after redirects


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # ASCII (IDNA) form, no brackets
    port: int
    addresses: list[IPAddress]


def fetch(
    url: str,
    *,
    max_bytes: int,
    timeout: float = 20,
    content_type_prefix: str = "image/",
    trusted_origins: Iterable[str] = (),
) -> Fetched:
    """GET `url` within `timeout` seconds in all; the body must be 200, typed, and at most `max_bytes`."""
    deadline = time.monotonic() + timeout
    trusted = {origin for origin in map(_origin_key, trusted_origins) if origin}
    noun = "image" if content_type_prefix.startswith("image/") else "file"
    a_noun = "an image" if noun == "image" else "a file"
    shown = _shown(url)
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        # Every check names the URL it refused; after a redirect, say where from.
        subject = (
            _shown(current)
            if hop == 0
            else f"{shown} redirects to {_shown(current)}, which"
        )
        target = _target(current, subject=subject, trusted=trusted)
        with _opened(
            target, deadline=deadline, accept=f"{content_type_prefix}*", shown=shown
        ) as response:
            if response.status_code in REDIRECT_STATUSES:
                location = response.headers.get("Location", "").strip()
                if not location:
                    raise FetchError(
                        f"{_shown(current)} redirects without saying where to."
                    )
                current = urljoin(target.url, location)
                continue
            if response.status_code != 200:
                raise FetchError(
                    f"Fetching {shown} failed: the server answered HTTP {response.status_code} "
                    f"instead of the {noun}.",
                    transient=response.status_code in TRANSIENT_STATUSES,
                )
            content_type = (
                response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            )
            prefix = content_type_prefix.lower()
            if not content_type.startswith(prefix) or content_type == prefix:
                described = (
                    f"says it is {content_type!r}"
                    if content_type
                    else "doesn't say what it is"
                )
                raise FetchError(f"{shown} isn't {a_noun}: the server {described}.")
            too_large = FetchError(
                f"The {noun} at {shown} is larger than {size_text(max_bytes)}."
            )
            if _content_length(response) > max_bytes:
                raise too_large
            content = _read_body(
                response,
                max_bytes=max_bytes,
                deadline=deadline,
                too_large=too_large,
                shown=shown,
            )
            return Fetched(content=content, content_type=content_type, url=target.url)
    raise FetchError(
        f"{shown} redirects more than {MAX_REDIRECTS} times, so bananaweb gave up."
    )


# --- Checking a URL -------------------------------------------------------------


def _target(url: str, *, subject: str, trusted: set[tuple[str, str, int]]) -> _Target:
    """The URL's host and the addresses it may be fetched from, or FetchError."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port
        host = _ascii_host(parts.hostname or "")
    except (ValueError, idna.IDNAError):
        raise FetchError(f"{subject} isn't a valid URL.") from None
    if scheme not in DEFAULT_PORTS:
        raise FetchError(f"{subject} isn't an http or https URL.")
    if not host:
        raise FetchError(f"{subject} has no host name.")
    if parts.username is not None or parts.password is not None:
        raise FetchError(
            f"{subject} has a user name or password in it; bananaweb won't send those."
        )
    port = port or DEFAULT_PORTS[scheme]
    addresses = _resolve(host, port, subject=subject)
    if (scheme, host, port) not in trusted and not all(map(_is_public, addresses)):
        raise FetchError(
            f"{subject} points at a private network address; bananaweb won't fetch it."
        )
    return _Target(url=url, scheme=scheme, host=host, port=port, addresses=addresses)


def _resolve(host: str, port: int, *, subject: str) -> list[IPAddress]:
    try:
        # Numeric forms first, never via DNS: 127.0.0.1, ::1, and the odd ones
        # inet_aton accepts (2130706433, 0x7f.1, 0177.0.0.1, 127.1).
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise FetchError(
                f"{subject} names a host bananaweb couldn't find ({host})."
            ) from None
    addresses: list[IPAddress] = []
    for info in infos:
        try:
            address = ipaddress.ip_address(info[4][0])
        except ValueError:
            raise FetchError(
                f"{subject} resolves to an address bananaweb doesn't understand."
            ) from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchError(f"{subject} names a host bananaweb couldn't find ({host}).")
    return addresses


def _is_public(address: IPAddress) -> bool:
    """Globally routable, and not an IPv6 wrapping of a non-global IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not _is_public(embedded):
            return False
    elif address in _SHARED_ADDRESS_SPACE:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _ascii_host(host: str) -> str:
    host = host.lower().rstrip(".")
    if host.isascii():
        return host
    return idna.encode(host, uts46=True).decode("ascii")


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            return None
        return scheme, _ascii_host(parts.hostname), parts.port or DEFAULT_PORTS[scheme]
    except (ValueError, idna.IDNAError):
        return None


# --- Connecting to the checked address -------------------------------------------


class _PinnedAdapter(HTTPAdapter):
    """Connects to one already-checked IP address, whatever the host resolves to now.

    Checking the host's addresses and then letting urllib3 resolve the name again
    would leave room for DNS rebinding (public when checked, 127.0.0.1 when
    connecting). So the connection pool's host is the checked IP, while the Host
    header (set by the caller), TLS SNI and the certificate check use the real name.
    """

    def __init__(self, *, address: IPAddress, hostname: str) -> None:
        self._address = str(address)
        self._hostname = hostname
        super().__init__(max_retries=0)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(
            request, verify, cert
        )
        host_params["host"] = self._address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self._hostname
            pool_kwargs["assert_hostname"] = self._hostname
        # Proxies are ignored on purpose: a proxy would resolve the name itself.
        return self.poolmanager.connection_from_host(
            **host_params, pool_kwargs=pool_kwargs
        )


@contextmanager
def _opened(
    target: _Target, *, deadline: float, accept: str, shown: str
) -> Iterator[requests.Response]:
    """The response (headers read, body not yet) from the first checked address that answers."""
    host_header = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != DEFAULT_PORTS[target.scheme]:
        host_header += f":{target.port}"
    headers = {
        "Host": host_header,
        "User-Agent": USER_AGENT,
        "Accept": accept,
        "Accept-Encoding": "identity",
    }
    try:
        prepared = requests.Request("GET", target.url, headers=headers).prepare()
    except (requests.RequestException, ValueError):
        raise FetchError(f"{shown} isn't a valid URL.") from None
    addresses = target.addresses[:MAX_ADDRESSES_TRIED]
    for index, address in enumerate(addresses):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _too_slow(shown)
        adapter = _PinnedAdapter(address=address, hostname=target.host)
        try:
            response = adapter.send(
                prepared,
                stream=True,
                timeout=(min(remaining, CONNECT_TIMEOUT), remaining),
            )
        except requests.exceptions.SSLError:
            adapter.close()
            raise FetchError(
                f"bananaweb couldn't make a verified secure connection to {target.host} for {shown}."
            ) from None
        except requests.exceptions.ConnectionError as exc:  # ConnectTimeout too
            adapter.close()
            if _is_connect_failure(exc) and index + 1 < len(addresses):
                continue  # that address is unreachable; try the host's next one
            if isinstance(exc, requests.exceptions.ConnectTimeout) or _is_read_timeout(
                exc
            ):
                raise _too_slow(shown) from None
            raise FetchError(
                f"bananaweb couldn't connect to {target.host} to fetch {shown}.",
                transient=True,
            ) from None
        except requests.exceptions.Timeout:
            adapter.close()
            raise _too_slow(shown) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
            adapter.close()
            raise FetchError(
                f"Fetching {shown} failed: the server's answer was broken.",
                transient=True,
            ) from None
        try:
            yield response
        finally:
            response.close()
            adapter.close()
        return


def _is_connect_failure(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _is_read_timeout(exc: requests.RequestException) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.ReadTimeoutError)


def _content_length(response: requests.Response) -> int:
    try:
        return int(response.headers.get("Content-Length", ""))
    except ValueError:
        return -1  # missing or odd: the streamed read still stops at the cap


def _read_body(
    response: requests.Response,
    *,
    max_bytes: int,
    deadline: float,
    too_large: FetchError,
    shown: str,
) -> bytes:
    raw = response.raw
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _too_slow(shown)
            # A socket timeout bounds one recv, not the body: a slow drip could
            # go on for ever. So each read gets only what is left of the deadline,
            # and read1 returns what one recv brought instead of waiting for more.
            sock = getattr(raw.connection, "sock", None)
            if sock is not None:
                sock.settimeout(remaining)
            chunk = raw.read1(
                min(CHUNK_SIZE, max_bytes + 1 - size), decode_content=True
            )
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise too_large
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
        raise _too_slow(shown) from None
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
        raise FetchError(
            f"The connection broke off while fetching {shown}.", transient=True
        ) from None


# --- Messages -------------------------------------------------------------------


def _too_slow(shown: str) -> FetchError:
    return FetchError(
        f"Fetching {shown} took too long, so bananaweb gave up.", transient=True
    )


def _shown(url: str, limit: int = 200) -> str:
    """The URL as messages show it: without any user name or password, and not too long."""
    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    except ValueError:
        pass
    return url if len(url) <= limit else url[: limit - 1] + "…"


def size_text(size: int) -> str:
    """A byte count for a sentence: \"10 MB\", \"1.5 KB\"."""
    mb = 1024 * 1024
    if size >= mb:
        return f"{size // mb} MB" if size % mb == 0 else f"{size / mb:.1f} MB"
    if size >= 1024:
        return f"{size // 1024} KB" if size % 1024 == 0 else f"{size / 1024:.1f} KB"
    return f"{size} bytes"
