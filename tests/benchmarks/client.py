"""The benchmark's own HTTP on loopback: signing in once, checking each line's
answer before wrk hammers it, the poller's query as a page gives it, and the main
page's weight on the wire. Standard library only; no redirects followed."""

import http.client
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

TIMEOUT = 30
# What a current browser sends: WhiteNoise then serves the smallest of br and gzip.
ACCEPT_ENCODING = "gzip, deflate, br, zstd"


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes  # as sent: still compressed if it was

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    @property
    def wire_bytes(self) -> int:
        """Status line, headers and body as they crossed the wire (near enough)."""
        head = len("HTTP/1.1 200 OK\r\n\r\n") + sum(
            len(k) + len(v) + 4 for k, v in self.headers
        )
        return head + len(self.body)


@dataclass
class Client:
    """One signed-in person's cookies against one site."""

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: str | None = None,
        cookies: bool = True,
    ) -> Answer:
        parts = urlsplit(self.base_url)
        connection = http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=TIMEOUT
        )
        sent = dict(headers or {})
        if cookies and self.cookies:
            sent["Cookie"] = self.cookie_header
        if body is not None:
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            answer = Answer(response.status, response.getheaders(), response.read())
        finally:
            connection.close()
        for name, value in answer.headers:
            if name.lower() == "set-cookie":
                for morsel in SimpleCookie(value).values():
                    self.cookies[morsel.key] = morsel.value
        return answer

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    @property
    def csrf_token(self) -> str:
        return self.cookies.get("csrftoken", "")

    def sign_in(self, login_path: str, username: str, password: str) -> None:
        """The real login form: its CSRF cookie, then the POST; a 302 means in."""
        self.request("GET", login_path)
        answer = self.request(
            "POST",
            login_path,
            body=urlencode(
                {
                    "username": username,
                    "password": password,
                    "csrfmiddlewaretoken": self.csrf_token,
                }
            ),
        )
        if answer.status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(
                f"Signing in as {username} answered {answer.status}, not a redirect "
                "with a session."
            )


class _PollerInputs(HTMLParser):
    """The (name, value) pairs htmx sends with the page's poller: the inputs that
    belong to the form `form_id` (inside it, or outside with form="…")."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.pairs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        if tag == "form":
            self.inside = values.get("id") == self.form_id
        elif tag == "input" and values.get("name"):
            owner = values.get("form", self.form_id if self.inside else None)
            if owner == self.form_id:
                self.pairs.append((values["name"], values.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def poller_query(page: str, form_id: str = "request-poll") -> str:
    """The query string the page's poller sends, as htmx builds it."""
    parser = _PollerInputs(form_id)
    parser.feed(page)
    return urlencode(parser.pairs)


class _Assets(HTMLParser):
    """What a first load fetches besides the page and the history's images: style
    sheets, scripts and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        rel = (values.get("rel") or "").split()
        if tag == "script" and values.get("src"):
            self.urls.append(values["src"])
        elif tag == "link" and values.get("href") and {"stylesheet", "icon"} & set(rel):
            self.urls.append(values["href"])


def first_load_bytes(client: Client, path: str = "/") -> tuple[int, list[str]]:
    """The main page's first load on the wire, cache empty: the page and its style
    sheets, scripts and icons, compressed as the server sends them to a browser.
    The history's thumbnails are left out (they load lazily, as the browser test
    of the page's weight counts them apart). Also the URLs counted."""
    headers = {"Accept-Encoding": ACCEPT_ENCODING}
    page = client.request("GET", path, headers=headers)
    plain = client.request("GET", path)
    assets = _Assets()
    assets.feed(plain.body.decode())
    total = page.wire_bytes
    for url in dict.fromkeys(assets.urls):
        total += client.request("GET", url, headers=headers).wire_bytes
    return total, [path, *dict.fromkeys(assets.urls)]
