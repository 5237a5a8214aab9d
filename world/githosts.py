"""Local stand-ins for the GitHub and GitLab REST APIs that hooksync reports commit statuses to.

The real PyGithub and python-gitlab clients talk to them over HTTP; state lives in memory.
"""

from __future__ import annotations

import contextlib
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
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

__all__ = ["Call", "GitHubStandIn", "GitLabStandIn"]

_SHA = re.compile(r"[0-9a-f]{40}")

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
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    malformed: bool
    origin: str


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    remaining: int
    status: int
    retry_after: int | None
    all_calls: bool


@dataclass(frozen=True)
class _Page:
    items: list[Any]
    page: int
    per_page: int
    last: int
    total: int
    links: dict[str, str]


_RouteHandler = Callable[[_Request, dict[str, str]], _Reply]


def _iso(ts: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query[name])
    except (KeyError, ValueError):
        return default


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("token", "bearer") and value.strip() else None


def _same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _parse_body(raw: bytes, content_type: str) -> tuple[Any, bool]:
    if not raw:
        return None, False
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)), False
    try:
        return json.loads(raw), False
    except ValueError:
        return raw.decode("utf-8", "replace"), True


def _paginate(req: _Request, items: list[Any], *, default: int, maximum: int) -> _Page:
    per_page = min(max(_int_param(req.query, "per_page", default), 1), maximum)
    page = max(_int_param(req.query, "page", 1), 1)
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
    return _Page(chunk, page, per_page, last, len(items), links)


def _link_header(links: dict[str, str]) -> str:
    return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links.items())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, standin: _StandIn) -> None:
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _RequestHandler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def drop_connections(self) -> None:
        # Keep-alive connections would otherwise go on being served after stop(), so a
        # test that stops a host to simulate an outage would still get answers.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive as the real hosts do; every reply carries a Content-Length.
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle on, each reply would wait
        # for the client's delayed ACK (~40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

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
        body, malformed = _parse_body(raw, self.headers.get("Content-Type", ""))
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
        request = _Request(
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


class _StandIn(ABC):
    """HTTP plumbing, call log and fault injection shared by both hosts."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._routes = [
            (method, re.compile(pattern), handler)
            for method, pattern, handler in self._route_specs()
        ]
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._down = False
        self._ids = itertools.count(1)
        self._epoch = time.time()
        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> Self:
        """Serve in a background thread; after a stop() it comes back on the same port."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server(self._port, self)
            self._port = server.server_port
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"{type(self).__name__}:{self._port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections; state and the call log are kept."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

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
    ) -> None:
        """Answer the next `n` status writes (every request with `all_calls`) with `status`.

        `retry_after` sets a Retry-After header; None leaves it out.
        """
        if n < 1 or status < 400:
            raise ValueError("fail_next needs n >= 1 and an error status")
        with self._lock:
            self._faults.append(_Fault(n, status, retry_after, all_calls))

    def set_down(self, down: bool = True) -> None:
        """While down, every request is answered 503."""
        with self._lock:
            self._down = down

    # request handling

    def _dispatch(self, req: _Request) -> _Reply:
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

    def _answer(self, req: _Request) -> _Reply:
        if self._down:
            return self._down_reply()
        if not self._authorized(req):
            return self._decorate(self._unauthorized_reply())
        reply = self._throttle(req)
        if reply is None:
            fault = self._take_fault(req)
            reply = self._route(req) if fault is None else self._fault_reply(fault)
        return self._decorate(reply)

    def _take_fault(self, req: _Request) -> _Fault | None:
        write = req.method not in ("GET", "HEAD")
        for fault in self._faults:
            if fault.all_calls or write:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _route(self, req: _Request) -> _Reply:
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
    def _route_specs(self) -> list[tuple[str, str, _RouteHandler]]:
        """(method, path pattern under the API root, handler); named groups become params."""

    @abstractmethod
    def _api_path(self, req: _Request) -> str | None:
        """The request path below the API root, or None when it is outside the API."""

    @abstractmethod
    def _authorized(self, req: _Request) -> bool: ...

    @abstractmethod
    def _unauthorized_reply(self) -> _Reply: ...

    @abstractmethod
    def _no_route_reply(self) -> _Reply: ...

    @abstractmethod
    def _fault_reply(self, fault: _Fault) -> _Reply: ...

    def _down_reply(self) -> _Reply:
        return _Reply(503, {"message": "503 Service Unavailable"})

    def _throttle(self, req: _Request) -> _Reply | None:
        return None

    def _decorate(self, reply: _Reply) -> _Reply:
        return reply


# --------------------------------------------------------------------------- GitHub

_GITHUB_STATES = frozenset({"error", "failure", "pending", "success"})
_GITHUB_DOCS = "https://docs.github.com/rest"
_GITHUB_STATUS_DOCS = "https://docs.github.com/rest/commits/statuses#create-a-commit-status"
_GITHUB_LIMITS_DOCS = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
_GITHUB_SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
_GITHUB_PRIMARY_LIMIT = "API rate limit exceeded for user ID 1."


@dataclass
class _GitHubRepo:
    id: int
    full_name: str
    default_branch: str
    private: bool
    created_at: float
    branches: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, list[_GitHubStatus]] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]


@dataclass(frozen=True)
class _GitHubStatus:
    id: int
    sha: str
    state: str
    description: str | None
    target_url: str | None
    context: str
    created_at: float


class GitHubStandIn(_StandIn):
    """GitHub's commit-status REST API, at `api_url` and, Enterprise style, at `enterprise_api_url`.

    Any 40-hex SHA counts as a commit of a registered repository; branches are named with
    set_branch(). The primary rate limit counts authenticated requests like GitHub's does.
    """

    MAX_DESCRIPTION = 140
    MAX_STATUSES_PER_CONTEXT = 1000

    def __init__(self, token: str, *, login: str = "hooksync-bot", rate_limit: int = 5000) -> None:
        super().__init__(token)
        self.login = login
        self._repos: dict[str, _GitHubRepo] = {}
        self._rate_limit = rate_limit
        self._rate_remaining = rate_limit
        self._rate_reset = time.time() + 3600
        self._rate_status = 403
        self._request_ids = itertools.count(1)

    @property
    def api_url(self) -> str:
        return self.base_url

    @property
    def enterprise_api_url(self) -> str:
        return f"{self.base_url}/api/v3"

    def add_repo(
        self, full_name: str, *, default_branch: str = "main", private: bool = True
    ) -> int:
        """Register `owner/name`; returns its id. Lookups ignore case, as GitHub's do."""
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"GitHub repository must be owner/name, got {full_name!r}")
        with self._lock:
            if full_name.lower() in self._repos:
                raise ValueError(f"{full_name} is already registered")
            repo = _GitHubRepo(self._next_id(), full_name, default_branch, private, time.time())
            self._repos[full_name.lower()] = repo
            return repo.id

    def set_branch(self, repo: str, branch: str, sha: str) -> None:
        """Point `branch` at `sha`, so refs like "main" resolve as on GitHub."""
        if not _SHA.fullmatch(sha):
            raise ValueError(f"not a full SHA: {sha!r}")
        with self._lock:
            self._repo_or_raise(repo).branches[branch] = sha

    def statuses(self, repo: str, ref: str) -> list[dict[str, Any]]:
        """The statuses stored for a commit, oldest first, as the API renders them."""
        with self._lock:
            found = self._repo_or_raise(repo)
            sha = self._resolve(found, ref)
            history = found.statuses.get(sha, []) if sha else []
            return [self._status_json(self.api_url, found, status) for status in history]

    def preload_statuses(
        self,
        repo: str,
        sha: str,
        count: int,
        *,
        context: str = "default",
        state: str = "success",
    ) -> None:
        """Test shortcut: store `count` statuses without HTTP or call-log entries."""
        if state not in _GITHUB_STATES:
            raise ValueError(f"not a GitHub status state: {state!r}")
        with self._lock:
            found = self._repo_or_raise(repo)
            resolved = self._resolve(found, sha)
            if resolved is None:
                raise ValueError(f"no commit {sha!r} in {repo}")
            history = found.statuses.setdefault(resolved, [])
            now = time.time()
            history.extend(
                _GitHubStatus(self._next_id(), resolved, state, None, None, context, now)
                for _ in range(count)
            )

    def set_rate_limit(
        self, remaining: int, *, reset_in: float = 3600.0, status: int = 403
    ) -> None:
        """Set the primary rate limit's budget; at zero every request gets `status` until reset.

        GitHub documents both 403 and 429 for an exhausted primary limit.
        """
        with self._lock:
            self._rate_remaining = remaining
            self._rate_reset = time.time() + reset_in
            self._rate_status = status

    # routing

    def _route_specs(self) -> list[tuple[str, str, _RouteHandler]]:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        return [
            ("GET", r"/user", self._get_user),
            ("GET", r"/rate_limit", self._get_rate_limit),
            ("GET", repo, self._get_repo),
            ("GET", repo + r"/commits/(?P<ref>[^/]+)", self._get_commit),
            ("GET", repo + r"/commits/(?P<ref>[^/]+)/statuses", self._list_statuses),
            ("GET", repo + r"/statuses/(?P<ref>[^/]+)", self._list_statuses),
            ("GET", repo + r"/commits/(?P<ref>[^/]+)/status", self._combined_status),
            ("POST", repo + r"/statuses/(?P<ref>[^/]+)", self._create_status),
        ]

    def _api_path(self, req: _Request) -> str | None:
        if req.path == "/api/v3" or req.path.startswith("/api/v3/"):
            return req.path.removeprefix("/api/v3") or "/"
        return req.path

    def _api_base(self, req: _Request) -> str:
        enterprise = req.path == "/api/v3" or req.path.startswith("/api/v3/")
        return req.origin + ("/api/v3" if enterprise else "")

    def _authorized(self, req: _Request) -> bool:
        return _same_secret(_bearer(req.headers.get("authorization")), self.token)

    # replies

    def _error(
        self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> _Reply:
        body = {"message": message, "documentation_url": _GITHUB_DOCS, **extra}
        body["status"] = str(status)
        return _Reply(status, body, headers or {})

    def _unauthorized_reply(self) -> _Reply:
        return self._error(401, "Bad credentials")

    def _no_route_reply(self) -> _Reply:
        return self._error(404, "Not Found")

    def _down_reply(self) -> _Reply:
        return _Reply(503, {"message": "Service Unavailable"})

    def _fault_reply(self, fault: _Fault) -> _Reply:
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        if fault.status in (403, 429):
            return self._error(
                fault.status,
                _GITHUB_SECONDARY_LIMIT,
                documentation_url=_GITHUB_LIMITS_DOCS,
                headers=headers,
            )
        return self._error(fault.status, _phrase(fault.status), headers=headers)

    def _validation_failed(self, *errors: dict[str, str]) -> _Reply:
        return self._error(
            422, "Validation Failed", errors=list(errors), documentation_url=_GITHUB_STATUS_DOCS
        )

    def _throttle(self, req: _Request) -> _Reply | None:
        now = time.time()
        if now >= self._rate_reset:
            self._rate_remaining = self._rate_limit
            self._rate_reset = now + 3600
        # GitHub does not charge for asking about the rate limit.
        if self._api_path(req) == "/rate_limit":
            return None
        if self._rate_remaining <= 0:
            return self._error(
                self._rate_status, _GITHUB_PRIMARY_LIMIT, documentation_url=_GITHUB_LIMITS_DOCS
            )
        self._rate_remaining -= 1
        return None

    def _rate_json(self) -> dict[str, int]:
        remaining = max(self._rate_remaining, 0)
        return {
            "limit": self._rate_limit,
            "remaining": remaining,
            "reset": math.ceil(self._rate_reset),
            "used": max(self._rate_limit - remaining, 0),
        }

    def _decorate(self, reply: _Reply) -> _Reply:
        rate = self._rate_json()
        reply.headers.update(
            {
                "X-RateLimit-Limit": str(rate["limit"]),
                "X-RateLimit-Remaining": str(rate["remaining"]),
                "X-RateLimit-Reset": str(rate["reset"]),
                "X-RateLimit-Used": str(rate["used"]),
                "X-RateLimit-Resource": "core",
                "X-GitHub-Media-Type": "github.v3; format=json",
                "X-GitHub-Request-Id": f"STANDIN:{next(self._request_ids)}",
            }
        )
        return reply

    # model

    def _repo_or_raise(self, full_name: str) -> _GitHubRepo:
        repo = self._repos.get(full_name.lower())
        if repo is None:
            raise KeyError(f"no repository {full_name} registered")
        return repo

    def _resolve(self, repo: _GitHubRepo, ref: str) -> str | None:
        branch = ref.removeprefix("refs/").removeprefix("heads/")
        if branch in repo.branches:
            return repo.branches[branch]
        return ref.lower() if _SHA.fullmatch(ref.lower()) else None

    def _user_json(self, api: str) -> dict[str, Any]:
        return {
            "login": self.login,
            "id": 1,
            "node_id": "U_standin",
            "type": "User",
            "site_admin": False,
            "url": f"{api}/users/{self.login}",
            "html_url": f"{api.removesuffix('/api/v3')}/{self.login}",
        }

    def _repo_json(self, api: str, repo: _GitHubRepo) -> dict[str, Any]:
        url = f"{api}/repos/{repo.full_name}"
        return {
            "id": repo.id,
            "node_id": f"R_standin{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {**self._user_json(api), "login": repo.owner, "id": repo.id + 1_000_000},
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "fork": False,
            "archived": False,
            "url": url,
            "html_url": f"{api.removesuffix('/api/v3')}/{repo.full_name}",
            "statuses_url": url + "/statuses/{sha}",
            "commits_url": url + "/commits{/sha}",
            "default_branch": repo.default_branch,
            "created_at": _iso(repo.created_at),
            "permissions": {"admin": False, "push": True, "pull": True},
        }

    def _status_json(self, api: str, repo: _GitHubRepo, status: _GitHubStatus) -> dict[str, Any]:
        return {
            "url": f"{api}/repos/{repo.full_name}/statuses/{status.sha}",
            "avatar_url": None,
            "id": status.id,
            "node_id": f"SC_standin{status.id}",
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": _iso(status.created_at),
            "updated_at": _iso(status.created_at),
            "creator": self._user_json(api),
        }

    # handlers

    def _get_user(self, req: _Request, params: dict[str, str]) -> _Reply:
        return _Reply(200, self._user_json(self._api_base(req)))

    def _get_rate_limit(self, req: _Request, params: dict[str, str]) -> _Reply:
        rate = self._rate_json()
        return _Reply(200, {"resources": {"core": {**rate, "resource": "core"}}, "rate": rate})

    def _lookup(self, params: dict[str, str]) -> _GitHubRepo | None:
        return self._repos.get(f"{params['owner']}/{params['repo']}".lower())

    def _get_repo(self, req: _Request, params: dict[str, str]) -> _Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        return _Reply(200, self._repo_json(self._api_base(req), repo))

    def _get_commit(self, req: _Request, params: dict[str, str]) -> _Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        sha = self._resolve(repo, params["ref"])
        if sha is None:
            return self._error(422, f"No commit found for SHA: {params['ref']}")
        api = self._api_base(req)
        url = f"{api}/repos/{repo.full_name}/commits/{sha}"
        person = {
            "name": "Stand-in Author",
            "email": "author@example.com",
            "date": _iso(self._epoch),
        }
        return _Reply(
            200,
            {
                "sha": sha,
                "node_id": f"C_standin{sha[:12]}",
                "url": url,
                "html_url": f"{req.origin}/{repo.full_name}/commit/{sha}",
                "comments_url": f"{url}/comments",
                "commit": {
                    "url": f"{api}/repos/{repo.full_name}/git/commits/{sha}",
                    "author": person,
                    "committer": person,
                    "message": f"Commit {sha[:7]}",
                    "comment_count": 0,
                },
                "author": None,
                "committer": None,
                "parents": [],
                "stats": {"total": 0, "additions": 0, "deletions": 0},
                "files": [],
            },
        )

    def _list_statuses(self, req: _Request, params: dict[str, str]) -> _Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        sha = self._resolve(repo, params["ref"])
        if sha is None:
            return self._error(404, f"No commit found for SHA: {params['ref']}")
        newest_first = list(reversed(repo.statuses.get(sha, [])))
        page = _paginate(req, newest_first, default=30, maximum=100)
        api = self._api_base(req)
        headers = {"Link": _link_header(page.links)} if page.last > 1 else {}
        return _Reply(200, [self._status_json(api, repo, s) for s in page.items], headers)

    def _combined_status(self, req: _Request, params: dict[str, str]) -> _Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        sha = self._resolve(repo, params["ref"])
        if sha is None:
            return self._error(404, f"No commit found for SHA: {params['ref']}")
        latest: dict[str, _GitHubStatus] = {}
        for status in reversed(repo.statuses.get(sha, [])):
            latest.setdefault(status.context, status)
        states = {status.state for status in latest.values()}
        if states & {"error", "failure"}:
            combined = "failure"
        elif not states or "pending" in states:
            combined = "pending"
        else:
            combined = "success"
        api = self._api_base(req)
        statuses = []
        for status in latest.values():
            rendered = self._status_json(api, repo, status)
            del rendered["creator"]
            statuses.append(rendered)
        return _Reply(
            200,
            {
                "state": combined,
                "statuses": statuses,
                "sha": sha,
                "total_count": len(statuses),
                "repository": self._repo_json(api, repo),
                "commit_url": f"{api}/repos/{repo.full_name}/commits/{sha}",
                "url": f"{api}/repos/{repo.full_name}/commits/{sha}/status",
            },
        )

    def _create_status(self, req: _Request, params: dict[str, str]) -> _Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        sha = self._resolve(repo, params["ref"])
        if sha is None:
            return self._error(422, f"No commit found for SHA: {params['ref']}")
        body = {} if req.body is None else req.body
        if req.malformed or not isinstance(body, dict):
            return self._error(400, "Problems parsing JSON")

        errors: list[dict[str, str]] = []
        if "state" not in body:
            errors.append({"resource": "Status", "code": "missing_field", "field": "state"})
        elif not isinstance(body["state"], str) or body["state"] not in _GITHUB_STATES:
            errors.append(_github_invalid("state", "state is not included in the list"))
        for name in ("description", "target_url", "context"):
            if body.get(name) is not None and not isinstance(body[name], str):
                errors.append(_github_invalid(name, f"{name} is not a string"))
        description = body.get("description")
        if isinstance(description, str) and len(description) > self.MAX_DESCRIPTION:
            errors.append(
                _github_invalid(
                    "description",
                    f"description is too long (maximum is {self.MAX_DESCRIPTION} characters)",
                )
            )
        if errors:
            return self._validation_failed(*errors)

        context = body.get("context") or "default"
        history = repo.statuses.setdefault(sha, [])
        if sum(s.context == context for s in history) >= self.MAX_STATUSES_PER_CONTEXT:
            return self._validation_failed(
                {
                    "resource": "Status",
                    "code": "custom",
                    "message": "This SHA and context has reached the maximum number of statuses.",
                }
            )
        status = _GitHubStatus(
            id=self._next_id(),
            sha=sha,
            state=body["state"],
            description=description,
            target_url=body.get("target_url"),
            context=context,
            created_at=time.time(),
        )
        history.append(status)
        rendered = self._status_json(self._api_base(req), repo, status)
        return _Reply(201, rendered, {"Location": rendered["url"]})


def _github_invalid(field_name: str, message: str) -> dict[str, str]:
    return {"resource": "Status", "code": "custom", "field": field_name, "message": message}


# --------------------------------------------------------------------------- GitLab

_GITLAB_STATES = frozenset({"pending", "running", "success", "failed", "canceled", "skipped"})
_GITLAB_ACTIVE = frozenset({"pending", "running"})

# GitLab's CommitStatus state machine: event -> (states it may fire from, resulting state).
_GITLAB_EVENTS: dict[str, tuple[frozenset[str], str]] = {
    "enqueue": (frozenset({"created", "skipped", "manual", "scheduled"}), "pending"),
    "run": (frozenset({"pending"}), "running"),
    "success": (frozenset({"created", "pending", "running"}), "success"),
    "drop": (frozenset({"created", "pending", "running"}), "failed"),
    "cancel": (frozenset({"created", "pending", "running"}), "canceled"),
    "skip": (frozenset({"created", "pending"}), "skipped"),
}

# The events the statuses API fires for each requested state. For "running" GitLab calls
# `enqueue` without the bang, so its failure is ignored; only the `run!` must succeed.
_GITLAB_API_EVENTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "pending": (("enqueue", True),),
    "running": (("enqueue", False), ("run", True)),
    "success": (("success", True),),
    "failed": (("drop", True),),
    "canceled": (("cancel", True),),
    "skipped": (("skip", True),),
}


class _TransitionError(Exception):
    pass


def _gitlab_transition(state: str, requested: str) -> str:
    for event, required in _GITLAB_API_EVENTS[requested]:
        sources, target = _GITLAB_EVENTS[event]
        if state in sources:
            state = target
        elif required:
            raise _TransitionError(
                f"Cannot transition status via :{event} from :{state} "
                f'(Reason(s): Status cannot transition via "{event}")'
            )
    return state


@dataclass
class _GitLabProject:
    id: int
    path_with_namespace: str
    default_branch: str
    created_at: float
    branches: dict[str, str] = field(default_factory=dict)
    statuses: list[_GitLabStatus] = field(default_factory=list)
    pipelines: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class _GitLabStatus:
    id: int
    sha: str
    ref: str
    name: str
    status: str
    description: str | None
    target_url: str | None
    coverage: float | None
    pipeline_id: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class GitLabStandIn(_StandIn):
    """GitLab's commits and commit-status REST API under `url`/api/v4.

    A status in pending or running is updated in place by the next post for the same
    (sha, name, ref), through GitLab's state machine; after a final state a post makes a new one.
    """

    MAX_DESCRIPTION = 255

    def __init__(self, token: str, *, username: str = "hooksync-bot") -> None:
        super().__init__(token)
        self.username = username
        self._projects: dict[int, _GitLabProject] = {}

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v4"

    def add_repo(self, path_with_namespace: str, *, default_branch: str = "main") -> int:
        """Register a project `group[/subgroup...]/name`; returns its numeric id."""
        if path_with_namespace.count("/") < 1 or "" in path_with_namespace.split("/"):
            raise ValueError(f"GitLab project must be group/name, got {path_with_namespace!r}")
        with self._lock:
            if self._find(path_with_namespace) is not None:
                raise ValueError(f"{path_with_namespace} is already registered")
            project = _GitLabProject(
                self._next_id(), path_with_namespace, default_branch, time.time()
            )
            self._projects[project.id] = project
            return project.id

    def set_branch(self, repo: str | int, branch: str, sha: str) -> None:
        """Point `branch` at `sha`, so refs like "main" resolve and default a status's ref."""
        if not _SHA.fullmatch(sha):
            raise ValueError(f"not a full SHA: {sha!r}")
        with self._lock:
            self._project_or_raise(repo).branches[branch] = sha

    def statuses(self, repo: str | int, ref: str) -> list[dict[str, Any]]:
        """Every status record of a commit, oldest first, each in its current state."""
        with self._lock:
            project = self._project_or_raise(repo)
            sha = self._resolve(project, ref)
            return [self._status_json(s) for s in project.statuses if s.sha == sha]

    # routing

    def _route_specs(self) -> list[tuple[str, str, _RouteHandler]]:
        project = r"/projects/(?P<project>[^/]+)"
        return [
            ("GET", r"/user", self._get_user),
            ("GET", r"/version", self._get_version),
            ("GET", project, self._get_project),
            ("GET", project + r"/repository/commits/(?P<sha>[^/]+)", self._get_commit),
            ("GET", project + r"/repository/commits/(?P<sha>[^/]+)/statuses", self._list),
            ("POST", project + r"/statuses/(?P<sha>[^/]+)", self._create_status),
        ]

    def _api_path(self, req: _Request) -> str | None:
        if not req.path.startswith("/api/v4/"):
            return None
        return req.path.removeprefix("/api/v4")

    def _authorized(self, req: _Request) -> bool:
        token = req.headers.get("private-token") or _bearer(req.headers.get("authorization"))
        return _same_secret(token, self.token)

    # replies

    def _unauthorized_reply(self) -> _Reply:
        return _Reply(401, {"message": "401 Unauthorized"})

    def _no_route_reply(self) -> _Reply:
        return _Reply(404, {"error": "404 Not Found"})

    def _not_found(self, what: str) -> _Reply:
        return _Reply(404, {"message": f"404 {what} Not Found"})

    def _fault_reply(self, fault: _Fault) -> _Reply:
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        if fault.status == 429:
            # GitLab's throttle (Rack::Attack) answers in plain text with RateLimit-* headers.
            reset = time.time() + (fault.retry_after or 0)
            headers |= {
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(math.ceil(reset)),
                "RateLimit-ResetTime": formatdate(reset, usegmt=True),
            }
            return _Reply(429, "Retry later\n", headers)
        return _Reply(fault.status, {"message": f"{fault.status} {_phrase(fault.status)}"}, headers)

    # model

    def _find(self, ident: str | int) -> _GitLabProject | None:
        if isinstance(ident, int) or ident.isdigit():
            return self._projects.get(int(ident))
        wanted = ident.lower()
        return next(
            (p for p in self._projects.values() if p.path_with_namespace.lower() == wanted), None
        )

    def _project_or_raise(self, ident: str | int) -> _GitLabProject:
        project = self._find(ident)
        if project is None:
            raise KeyError(f"no project {ident} registered")
        return project

    def _resolve(self, project: _GitLabProject, ref: str) -> str | None:
        branch = ref.removeprefix("refs/heads/")
        if branch in project.branches:
            return project.branches[branch]
        return ref.lower() if _SHA.fullmatch(ref.lower()) else None

    def _user_json(self, origin: str) -> dict[str, Any]:
        return {
            "id": 1,
            "username": self.username,
            "name": "Hooksync Bot",
            "state": "active",
            "avatar_url": None,
            "web_url": f"{origin}/{self.username}",
        }

    def _project_json(self, origin: str, project: _GitLabProject) -> dict[str, Any]:
        path = project.path_with_namespace
        namespace, _, name = path.rpartition("/")
        return {
            "id": project.id,
            "name": name,
            "path": name,
            "path_with_namespace": path,
            "name_with_namespace": " / ".join(path.split("/")),
            "description": None,
            "default_branch": project.default_branch,
            "visibility": "private",
            "web_url": f"{origin}/{path}",
            "http_url_to_repo": f"{origin}/{path}.git",
            "created_at": _iso(project.created_at, millis=True),
            "namespace": {
                "id": project.id + 1_000_000,
                "name": namespace.rsplit("/", 1)[-1],
                "path": namespace.rsplit("/", 1)[-1],
                "kind": "group",
                "full_path": namespace,
            },
        }

    def _status_json(self, status: _GitLabStatus) -> dict[str, Any]:
        def stamp(ts: float | None) -> str | None:
            return None if ts is None else _iso(ts, millis=True)

        return {
            "id": status.id,
            "sha": status.sha,
            "ref": status.ref,
            "status": status.status,
            "name": status.name,
            "target_url": status.target_url,
            "description": status.description,
            "coverage": status.coverage,
            "allow_failure": False,
            "pipeline_id": status.pipeline_id,
            "created_at": stamp(status.created_at),
            "started_at": stamp(status.started_at),
            "finished_at": stamp(status.finished_at),
            "author": self._user_json(self.base_url),
        }

    # handlers

    def _get_user(self, req: _Request, params: dict[str, str]) -> _Reply:
        return _Reply(200, self._user_json(req.origin))

    def _get_version(self, req: _Request, params: dict[str, str]) -> _Reply:
        return _Reply(200, {"version": "17.0.0-standin", "revision": "standin"})

    def _get_project(self, req: _Request, params: dict[str, str]) -> _Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        return _Reply(200, self._project_json(req.origin, project))

    def _get_commit(self, req: _Request, params: dict[str, str]) -> _Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        sha = self._resolve(project, params["sha"])
        if sha is None:
            return self._not_found("Commit")
        when = _iso(self._epoch, millis=True)
        return _Reply(
            200,
            {
                "id": sha,
                "short_id": sha[:8],
                "title": f"Commit {sha[:8]}",
                "message": f"Commit {sha[:8]}\n",
                "author_name": "Stand-in Author",
                "author_email": "author@example.com",
                "authored_date": when,
                "committer_name": "Stand-in Author",
                "committer_email": "author@example.com",
                "committed_date": when,
                "created_at": when,
                "parent_ids": [],
                "web_url": f"{req.origin}/{project.path_with_namespace}/-/commit/{sha}",
                "status": None,
                "last_pipeline": None,
                "project_id": project.id,
            },
        )

    def _list(self, req: _Request, params: dict[str, str]) -> _Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        sha = self._resolve(project, params["sha"])
        if sha is None:
            return self._not_found("Commit")
        found = [s for s in project.statuses if s.sha == sha]
        if "ref" in req.query:
            found = [s for s in found if s.ref == req.query["ref"]]
        if "name" in req.query:
            found = [s for s in found if s.name == req.query["name"]]
        if req.query.get("all", "false").lower() not in ("true", "1"):
            latest: dict[tuple[str, str], _GitLabStatus] = {}
            for status in found:
                latest[(status.name, status.ref)] = status
            found = sorted(latest.values(), key=lambda s: s.id)
        if req.query.get("sort") == "desc":
            found.reverse()
        page = _paginate(req, found, default=20, maximum=100)
        headers = {
            "X-Page": str(page.page),
            "X-Per-Page": str(page.per_page),
            "X-Total": str(page.total),
            "X-Total-Pages": str(page.last),
            "X-Next-Page": str(page.page + 1) if page.page < page.last else "",
            "X-Prev-Page": str(page.page - 1) if page.page > 1 else "",
            "Link": _link_header(page.links),
        }
        return _Reply(200, [self._status_json(s) for s in page.items], headers)

    def _create_status(self, req: _Request, params: dict[str, str]) -> _Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        sha = self._resolve(project, params["sha"])
        if sha is None:
            return self._not_found("Commit")
        if req.malformed or not isinstance(req.body, dict | None):
            return _Reply(400, {"error": "The provided content-type is not supported."})
        # Grape merges query-string and body parameters.
        args: dict[str, Any] = {**req.query, **(req.body or {})}

        state = args.get("state")
        if state is None:
            return _Reply(400, {"error": "state is missing"})
        if not isinstance(state, str) or state not in _GITLAB_STATES:
            return _Reply(400, {"error": "state does not have a valid value"})
        description = args.get("description")
        if description is not None and len(str(description)) > self.MAX_DESCRIPTION:
            # GitLab stores longer text; this stand-in refuses it because hooksync's client
            # promises to stay within 255 characters and a silent pass would hide a bug.
            limit = self.MAX_DESCRIPTION
            return _Reply(
                400, {"error": f"description is too long (maximum is {limit} characters)"}
            )
        coverage = args.get("coverage")
        try:
            coverage = None if coverage is None else float(coverage)
        except (TypeError, ValueError):
            return _Reply(400, {"error": "coverage is invalid"})
        name = str(args.get("name") or args.get("context") or "default")
        ref = str(args.get("ref") or self._default_ref(project, sha))

        current = next(
            (
                s
                for s in reversed(project.statuses)
                if (s.sha, s.name, s.ref) == (sha, name, ref) and s.status in _GITLAB_ACTIVE
            ),
            None,
        )
        try:
            new_state = _gitlab_transition(current.status if current else "created", state)
        except _TransitionError as error:
            return _Reply(400, {"message": str(error)})

        now = time.time()
        if current is None:
            if (sha, ref) not in project.pipelines:
                project.pipelines[(sha, ref)] = self._next_id()
            pipeline = project.pipelines[(sha, ref)]
            current = _GitLabStatus(
                self._next_id(), sha, ref, name, "created", None, None, None, pipeline, now
            )
            project.statuses.append(current)
        current.status = new_state
        if new_state == "running" and current.started_at is None:
            current.started_at = now
        if new_state in ("success", "failed", "canceled"):
            current.finished_at = now
        if description is not None:
            current.description = str(description)
        if args.get("target_url") is not None:
            current.target_url = str(args["target_url"])
        if coverage is not None:
            current.coverage = coverage
        return _Reply(201, self._status_json(current))

    def _default_ref(self, project: _GitLabProject, sha: str) -> str:
        for branch, head in project.branches.items():
            if head == sha:
                return branch
        return project.default_branch
