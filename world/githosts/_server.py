"""What the GitHub and GitLab stand-ins share: the HTTP plumbing, the call log, fault
injection, pagination, and the `StandIn` base that each host fills in with its routes."""

from __future__ import annotations

import hmac
import itertools
import json
import math
import re
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from world.httpserver import LoopbackHTTPServer

SHA_PATTERN = re.compile(r"[0-9a-f]{40}")

# The token the shared stand-in fixtures (tests/conftest.py) accept.
STANDIN_TOKEN = "s3cret-token"


@dataclass(frozen=True)
class Call:
    """One request as a stand-in received it, and the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    at: float
    headers: dict[str, str]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    malformed: bool
    origin: str


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    remaining: int
    status: int
    retry_after: int | None
    all_calls: bool
    path: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[Any]
    page: int
    per_page: int
    last: int
    total: int
    links: dict[str, str]


RouteHandler = Callable[[Request, dict[str, str]], Reply]


def iso_time(ts: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def int_param(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query[name])
    except (KeyError, ValueError):
        return default


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("token", "bearer") and value.strip() else None


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def parse_body(raw: bytes, content_type: str) -> tuple[Any, bool]:
    if not raw:
        return None, False
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)), False
    try:
        return json.loads(raw), False
    except ValueError:
        return raw.decode("utf-8", "replace"), True


def paginate(req: Request, items: list[Any], *, default: int, maximum: int) -> Page:
    per_page = min(max(int_param(req.query, "per_page", default), 1), maximum)
    page = max(int_param(req.query, "page", 1), 1)
    last = max(math.ceil(len(items) / per_page), 1)
    chunk = items[(page - 1) * per_page : page * per_page]

    def url(number: int) -> str:
        query = {**req.query, "per_page": str(per_page), "page": str(number)}
        return f"{req.origin}{req.path}?{urlencode(query)}"

    links: dict[str, str] = {}
    if page > 1:
        links["prev"] = url(min(page - 1, last))
    if page < last:
        links["next"] = url(page + 1)
    links["first"] = url(1)
    links["last"] = url(last)
    return Page(chunk, page, per_page, last, len(items), links)


def link_header(links: dict[str, str]) -> str:
    return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links.items())


class _StandInServer(LoopbackHTTPServer):
    def __init__(self, port: int, standin: StandIn) -> None:
        self.standin = standin
        super().__init__(_RequestHandler, port=port)


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive as the real hosts do; every reply carries a Content-Length.
    protocol_version = "HTTP/1.1"
    server: _StandInServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle on, each reply would wait
        # for the client's delayed ACK (~40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        # The call log is the record; per-request lines on stderr only clutter test output.
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        target = urlsplit(self.path)
        body, malformed = parse_body(raw, self.headers.get("Content-Type", ""))
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
        request = Request(
            method=self.command,
            path=target.path,
            query=dict(parse_qsl(target.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            malformed=malformed,
            origin=f"http://{host}",
        )
        reply = self.server.standin._dispatch(request)
        if isinstance(reply.body, str):
            payload, content_type = reply.body.encode(), "text/plain; charset=utf-8"
        elif reply.body is None:
            payload, content_type = b"", ""
        else:
            payload = json.dumps(reply.body).encode()
            content_type = "application/json; charset=utf-8"
        self.send_response(reply.status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class StandIn(ABC):
    """HTTP plumbing, call log and fault injection shared by both hosts."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._routes = [
            (method, re.compile(pattern), handler)
            for method, pattern, handler in self._route_specs()
        ]
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._faults: list[Fault] = []
        self._down = False
        self._ids = itertools.count(1)
        self._epoch = time.time()
        self._port = 0
        self._server: _StandInServer | None = None

    # lifecycle

    def start(self) -> Self:
        """Serve in a background thread; after a stop() it comes back on the same port."""
        with self._lock:
            if self._server is not None:
                return self
            server = _StandInServer(self._port, self)
            self._port = server.port
            server.serve_in_background(f"{type(self).__name__}:{self._port}", poll_interval=0.01)
            self._server = server
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections; state and the call log are kept."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # observation

    @property
    def calls(self) -> list[Call]:
        """Every request so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # fault injection

    def fail_next(
        self,
        n: int = 1,
        status: int = 429,
        *,
        retry_after: int | None = None,
        all_calls: bool = False,
        path: str | None = None,
    ) -> None:
        """Answer the next `n` writes (every request with `all_calls`) with `status`.

        `retry_after` sets a Retry-After header; None leaves it out. `path` limits the fault
        to requests whose path contains it (say "/comments": only comment calls fail).
        """
        if n < 1 or status < 400:
            raise ValueError("fail_next needs n >= 1 and an error status")
        with self._lock:
            self._faults.append(Fault(n, status, retry_after, all_calls, path))

    def set_down(self, down: bool = True) -> None:
        """While down, every request is answered 503."""
        with self._lock:
            self._down = down

    # request handling

    def _dispatch(self, req: Request) -> Reply:
        with self._lock:
            reply = self._answer(req)
            self._calls.append(
                Call(
                    method=req.method,
                    path=req.path,
                    query=dict(req.query),
                    body=req.body,
                    status=reply.status,
                    at=time.time(),
                    headers=dict(req.headers),
                )
            )
            return reply

    def _answer(self, req: Request) -> Reply:
        if self._down:
            return self._down_reply()
        if not self._authorized(req):
            return self._decorate(self._unauthorized_reply())
        reply = self._throttle(req)
        if reply is None:
            fault = self._take_fault(req)
            reply = self._route(req) if fault is None else self._fault_reply(fault)
        return self._decorate(reply)

    def _take_fault(self, req: Request) -> Fault | None:
        write = req.method not in ("GET", "HEAD")
        for fault in self._faults:
            if fault.path is not None and fault.path not in req.path:
                continue
            if fault.all_calls or write:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _route(self, req: Request) -> Reply:
        path = self._api_path(req)
        if path is not None:
            for method, pattern, handler in self._routes:
                match = pattern.fullmatch(path)
                if match and method == req.method:
                    params = {key: unquote(value) for key, value in match.groupdict().items()}
                    return handler(req, params)
        return self._no_route_reply()

    def _next_id(self) -> int:
        return next(self._ids)

    # per-host behaviour

    @abstractmethod
    def _route_specs(self) -> list[tuple[str, str, RouteHandler]]:
        """(method, path pattern under the API root, handler); named groups become params."""

    @abstractmethod
    def _api_path(self, req: Request) -> str | None:
        """The request path below the API root, or None when it is outside the API."""

    @abstractmethod
    def _authorized(self, req: Request) -> bool: ...

    @abstractmethod
    def _unauthorized_reply(self) -> Reply: ...

    @abstractmethod
    def _no_route_reply(self) -> Reply: ...

    @abstractmethod
    def _fault_reply(self, fault: Fault) -> Reply: ...

    def _down_reply(self) -> Reply:
        return Reply(503, {"message": "503 Service Unavailable"})

    def _throttle(self, req: Request) -> Reply | None:
        return None

    def _decorate(self, reply: Reply) -> Reply:
        return reply
