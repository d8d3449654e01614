"""bananaweb.fetching against a tiny local HTTP server.

Nothing here leaves the machine: an autouse fixture answers every host-name
lookup from a table and refuses to connect anywhere but loopback. A "public"
host is faked by resolving its name to a public address and routing connections
to that address to the local server.
"""

import _socket
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests.adapters
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bananaweb.fetching import FetchError, fetch

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
MB = 1024 * 1024
PUBLIC_IP = "93.184.216.34"  # never actually contacted: routed to the local server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers))
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        route = getattr(
            self, "route_" + parts.path.strip("/").split("/")[0].replace("-", "_"), None
        )
        if route is None:
            self.send_body(b"not here", "text/plain", status=404)
        else:
            route(parts.path, query)

    def send_body(
        self,
        body: bytes,
        content_type: str | None,
        *,
        status: int = 200,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def route_image(self, path, query) -> None:
        self.send_body(PNG, query.get("type", "image/png"))

    def route_no_type(self, path, query) -> None:
        self.send_body(PNG, None)

    def route_redirect(self, path, query) -> None:
        # /redirect/3 -> /redirect/2 -> /redirect/1 -> /redirect/0 -> /image
        hops = int(path.rsplit("/", 1)[1])
        self.send_response(302)
        self.send_header("Location", f"/redirect/{hops - 1}" if hops > 0 else "/image")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_redirect_to(self, path, query) -> None:
        self.send_response(int(query.get("status", 302)))
        self.send_header("Location", query["location"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_declared_big(self, path, query) -> None:
        # Says the body is over the cap; sends only a little of it.
        self.send_body(PNG, "image/png", length=int(query["length"]))

    def route_undeclared_big(self, path, query) -> None:
        # No Content-Length: the body runs until the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"\x00" * int(query["size"]))
        self.close_connection = True

    def route_slow(self, path, query) -> None:
        # A byte every 50 ms (each read is quick, the whole never is), then silence.
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100")
        self.end_headers()
        try:
            for _ in range(int(query["drip"])):
                self.wfile.write(b"\x00")
                self.wfile.flush()
                time.sleep(0.05)
            time.sleep(3)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up early is what several tests are about


def serving(httpd: ThreadingHTTPServer):
    """Serve in a thread for a fixture's lifetime, then shut down."""
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def running_server():
    yield from serving(Server(("127.0.0.1", 0), Handler))


@pytest.fixture(scope="module")
def running_tls_server(tmp_path_factory):
    """An https server whose self-signed certificate is for cdn.test only; records the SNI names it saw."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cdn.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("cdn.test")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
    )
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.server_names = []
    context.sni_callback = lambda sock, server_name, context: httpd.server_names.append(
        server_name
    )
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.ca_file = str(directory / "cert.pem")
    yield from serving(httpd)


@pytest.fixture
def tls_server(running_tls_server, network, monkeypatch):
    """https://cdn.test and https://other.test: public names, both served by the TLS server."""
    running_tls_server.requests = []
    running_tls_server.server_names.clear()
    monkeypatch.setattr(
        requests.adapters, "DEFAULT_CA_BUNDLE_PATH", running_tls_server.ca_file
    )
    network.names["cdn.test"] = [PUBLIC_IP]
    network.names["other.test"] = [PUBLIC_IP]
    network.routes[PUBLIC_IP, 443] = ("127.0.0.1", running_tls_server.server_address[1])
    return running_tls_server


@pytest.fixture
def server(running_server):
    running_server.requests = []
    return running_server


@pytest.fixture
def origin(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@dataclass
class Network:
    # host name -> addresses, or a list of such lists (one per lookup, the last repeating)
    names: dict[str, list] = field(default_factory=dict)
    # (address, port) -> where connecting to it really goes
    routes: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    attempted: list[tuple] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def network(monkeypatch) -> Network:
    """A fake DNS table and a connect() that reaches only loopback and `routes`."""
    network = Network()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        try:
            return real_getaddrinfo(
                host, port, family, type, proto, flags | socket.AI_NUMERICHOST
            )
        except socket.gaierror:
            pass  # a name: answered from the table, never by real DNS
        network.lookups.append(host)
        answers = network.names.get(host)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if isinstance(answers[0], list):
            answers = answers[min(network.lookups.count(host), len(answers)) - 1]
        return [
            real_getaddrinfo(
                address, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
            )[0]
            for address in answers
        ]

    def connect(sock, address):
        network.attempted.append(address[:2])
        host, port = address[:2]
        if (host, port) in network.routes:
            return _socket.socket.connect(sock, network.routes[host, port])
        if ipaddress.ip_address(host).is_loopback:
            return _socket.socket.connect(sock, address)
        raise ConnectionRefusedError(f"test network: no route to {host}")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return network


@pytest.fixture
def public_host(network, server) -> str:
    """http://cdn.test: a name resolving to a public address, served by the local server."""
    network.names["cdn.test"] = [PUBLIC_IP]
    network.routes[PUBLIC_IP, 80] = ("127.0.0.1", server.server_address[1])
    return "http://cdn.test"


# --- Fetching ---------------------------------------------------------------------


def test_fetches_an_image_from_a_trusted_origin(origin):
    fetched = fetch(f"{origin}/image", max_bytes=MB, trusted_origins=[origin])
    assert fetched.content == PNG
    assert fetched.content_type == "image/png"
    assert fetched.url == f"{origin}/image"


def test_fetches_from_a_public_host_at_the_checked_address_with_its_own_host_name(
    public_host, server, network
):
    fetched = fetch(f"{public_host}/image?type=image/PNG;charset=x", max_bytes=MB)
    assert fetched.content == PNG
    assert fetched.content_type == "image/png"
    assert network.attempted == [(PUBLIC_IP, 80)]
    ((_path, headers),) = server.requests
    assert headers.get_all("Host") == ["cdn.test"]
    assert headers["Accept"] == "image/*"


def test_dns_rebinding_after_the_check_does_not_change_where_we_connect(
    network, server
):
    # Public when checked, loopback on any later lookup: an unpinned client would
    # look the name up again when connecting and reach the local server.
    network.names["rebind.test"] = [[PUBLIC_IP], ["127.0.0.1"]]
    with pytest.raises(FetchError, match="couldn't connect to rebind.test"):
        fetch(f"http://rebind.test:{server.server_address[1]}/image", max_bytes=MB)
    assert network.attempted == [(PUBLIC_IP, server.server_address[1])]
    assert server.requests == []


def test_tries_the_next_checked_address_when_one_is_unreachable(network, server):
    network.names["cdn.test"] = ["8.8.8.8", PUBLIC_IP]
    network.routes[PUBLIC_IP, 80] = ("127.0.0.1", server.server_address[1])
    assert fetch("http://cdn.test/image", max_bytes=MB).content == PNG
    assert network.attempted == [("8.8.8.8", 80), (PUBLIC_IP, 80)]


def test_https_to_the_checked_address_still_verifies_the_host_names_certificate(
    tls_server, network
):
    fetched = fetch("https://cdn.test/image", max_bytes=MB)
    assert fetched.content == PNG
    assert network.attempted == [(PUBLIC_IP, 443)]
    assert tls_server.server_names == ["cdn.test"]
    ((_path, headers),) = tls_server.requests
    assert headers.get_all("Host") == ["cdn.test"]


def test_https_refuses_a_certificate_for_another_name(tls_server):
    with pytest.raises(
        FetchError, match="couldn't make a verified secure connection to other.test"
    ):
        fetch("https://other.test/image", max_bytes=MB)
    assert tls_server.server_names == ["other.test"]
    assert tls_server.requests == []


# --- Private addresses --------------------------------------------------------------


def test_loopback_is_refused_unless_its_origin_is_trusted(origin, server):
    with pytest.raises(FetchError) as refused:
        fetch(f"{origin}/image", max_bytes=MB)
    assert str(refused.value) == (
        f"{origin}/image points at a private network address; bananaweb won't fetch it."
    )
    assert server.requests == []


@pytest.mark.parametrize(
    "trusted",
    [
        "http://127.0.0.1:1",  # another port
        "https://127.0.0.1:{port}",  # another scheme
        "http://localhost:{port}",  # another name for the same place
        "http://127.0.0.1:{port}.evil.test",
        "not a url",
    ],
)
def test_trusted_origins_must_match_exactly(server, trusted):
    port = server.server_address[1]
    with pytest.raises(FetchError, match="private network address"):
        fetch(
            f"http://127.0.0.1:{port}/image",
            max_bytes=MB,
            trusted_origins=[trusted.format(port=port)],
        )
    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.8.9.10:8080/",
        "http://10.0.0.5/a.png",
        "https://10.0.0.5/a.png",
        "http://172.16.0.1/",
        "http://172.31.255.255/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[64:ff9b::a00:5]/",
        "http://[2002:c0a8:101::]/",
        "http://[::]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://017700000001/",
        "http://0xa9fea9fe/",  # 169.254.169.254
    ],
)
def test_private_addresses_are_refused_before_connecting(network, url):
    with pytest.raises(
        FetchError,
        match="points at a private network address; bananaweb won't fetch it",
    ):
        fetch(url, max_bytes=MB)
    assert network.attempted == []


def test_a_name_resolving_to_any_private_address_is_refused(network):
    network.names["mixed.test"] = [PUBLIC_IP, "10.0.0.7"]
    network.names["internal.test"] = ["192.168.0.10"]
    for url in ["https://mixed.test/a.png", "https://internal.test/a.png"]:
        with pytest.raises(FetchError, match="private network address"):
            fetch(url, max_bytes=MB)
    assert network.attempted == []


def test_redirect_to_a_private_address_is_refused(public_host, network):
    with pytest.raises(FetchError) as refused:
        fetch(
            f"{public_host}/redirect-to?location=http://169.254.169.254/latest/",
            max_bytes=MB,
        )
    assert str(refused.value) == (
        f"{public_host}/redirect-to?location=http://169.254.169.254/latest/ redirects to "
        "http://169.254.169.254/latest/, which points at a private network address; bananaweb won't fetch it."
    )
    assert network.attempted == [(PUBLIC_IP, 80)]


def test_redirect_from_a_trusted_origin_to_another_loopback_port_is_refused(
    origin, server
):
    with pytest.raises(FetchError, match="private network address"):
        fetch(
            f"{origin}/redirect-to?location=http://127.0.0.1:1/",
            max_bytes=MB,
            trusted_origins=[origin],
        )
    assert len(server.requests) == 1


def test_redirect_by_name_to_loopback_is_refused(public_host, network, server):
    network.names["sneaky.test"] = ["127.0.0.1"]
    with pytest.raises(FetchError, match="private network address"):
        fetch(
            f"{public_host}/redirect-to?location=http://sneaky.test:{server.server_address[1]}/image",
            max_bytes=MB,
        )
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://cdn.test/a.png", "isn't an http or https URL"),
        ("file:///etc/passwd", "isn't an http or https URL"),
        ("gopher://cdn.test/", "isn't an http or https URL"),
        ("cdn.test/a.png", "isn't an http or https URL"),
        ("http:///a.png", "has no host name"),
        ("http://cdn.test:99999/a.png", "isn't a valid URL"),
        ("http://user:secret@cdn.test/a.png", "user name or password"),
        ("http://nowhere.test/a.png", "couldn't find"),
    ],
)
def test_unusable_urls_are_refused(network, url, message):
    with pytest.raises(FetchError, match=message) as refused:
        fetch(url, max_bytes=MB)
    assert "secret" not in str(refused.value)
    assert network.attempted == []


# --- Redirects --------------------------------------------------------------------


def test_follows_up_to_three_redirects(origin, server):
    fetched = fetch(f"{origin}/redirect/2", max_bytes=MB, trusted_origins=[origin])
    assert fetched.content == PNG
    assert fetched.url == f"{origin}/image"
    assert [path for path, _ in server.requests] == [
        "/redirect/2",
        "/redirect/1",
        "/redirect/0",
        "/image",
    ]


def test_gives_up_after_three_redirects(origin, server):
    with pytest.raises(FetchError, match="redirects more than 3 times"):
        fetch(f"{origin}/redirect/3", max_bytes=MB, trusted_origins=[origin])
    assert len(server.requests) == 4


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_follows_every_kind_of_redirect_to_a_public_host(public_host, status):
    url = f"{public_host}/redirect-to?status={status}&location={public_host}/image"
    assert fetch(url, max_bytes=MB).url == f"{public_host}/image"


# --- Size, time, type, status -----------------------------------------------------


def test_content_length_over_the_cap_is_refused_before_reading(public_host):
    with pytest.raises(FetchError) as refused:
        fetch(f"{public_host}/declared-big?length={11 * MB}", max_bytes=10 * MB)
    assert (
        str(refused.value)
        == f"The image at {public_host}/declared-big?length={11 * MB} is larger than 10 MB."
    )


def test_body_over_the_cap_is_refused_while_streaming(origin):
    with pytest.raises(FetchError, match="is larger than 1000 bytes"):
        fetch(
            f"{origin}/undeclared-big?size=5000",
            max_bytes=1000,
            trusted_origins=[origin],
        )


def test_body_exactly_at_the_cap_is_fine(origin):
    fetched = fetch(
        f"{origin}/undeclared-big?size=1000", max_bytes=1000, trusted_origins=[origin]
    )
    assert len(fetched.content) == 1000


@pytest.mark.parametrize("drip", [100, 16])
def test_a_slow_body_stops_at_the_overall_deadline(origin, drip):
    # 100: drips past the deadline; 16: drips for 0.8 s, then stalls, and the
    # wait for the next byte gets only what is left of the second.
    started = time.monotonic()
    with pytest.raises(FetchError, match="took too long"):
        fetch(
            f"{origin}/slow?drip={drip}",
            max_bytes=MB,
            timeout=1,
            trusted_origins=[origin],
        )
    assert time.monotonic() - started < 1.4


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/image?type=text/html", "isn't an image: the server says it is 'text/html'"),
        (
            "/image?type=application/octet-stream",
            "says it is 'application/octet-stream'",
        ),
        ("/image?type=image/", "says it is 'image/'"),
        ("/no-type", "doesn't say what it is"),
    ],
)
def test_content_type_must_match(origin, path, message):
    with pytest.raises(FetchError, match=message):
        fetch(f"{origin}{path}", max_bytes=MB, trusted_origins=[origin])


def test_content_type_prefix_can_be_chosen(origin):
    fetched = fetch(
        f"{origin}/image?type=text/plain",
        max_bytes=MB,
        content_type_prefix="text/",
        trusted_origins=[origin],
    )
    assert fetched.content_type == "text/plain"
    with pytest.raises(FetchError, match="isn't a file"):
        fetch(
            f"{origin}/image",
            max_bytes=MB,
            content_type_prefix="text/",
            trusted_origins=[origin],
        )


def test_only_status_200_is_accepted(origin):
    with pytest.raises(FetchError, match="answered HTTP 404 instead of the image"):
        fetch(f"{origin}/missing.png", max_bytes=MB, trusted_origins=[origin])
