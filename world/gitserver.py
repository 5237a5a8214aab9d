"""A real Git server for the test world: bare repositories served over smart HTTP by
`git http-backend`, with optional token auth and a switch to simulate an outage."""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hmac
import logging
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any, cast
from urllib.parse import unquote, urlsplit

from world.httpserver import LoopbackHTTPServer

log = logging.getLogger(__name__)

AUTHOR_NAME = "Test World"
AUTHOR_EMAIL = "world@hooksync.test"

_NAME_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_COPY_CHUNK = 64 * 1024
# Hop-by-hop or framing headers that this server decides itself, whatever the CGI says.
_FRAMING_HEADERS = frozenset({"status", "transfer-encoding", "connection", "content-length"})


class GitCommandError(RuntimeError):
    """A helper git command failed; carries its stderr so test failures explain themselves."""

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class RequestRecord:
    """One answered request; `path` is the raw request target, query string included."""

    method: str
    path: str
    status: int


def isolated_git_env(home: Path) -> dict[str, str]:
    """Environment for git commands that ignores the user's system and global config and
    never prompts, so results do not depend on the machine the tests run on."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": AUTHOR_NAME,
        "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
        "GIT_COMMITTER_NAME": AUTHOR_NAME,
        "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
    }


def basic_auth(token: str, username: str = "x-access-token") -> str:
    """Value of an `Authorization` header carrying `token` the way Git hosts expect it."""
    raw = f"{username}:{token}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@functools.cache
def _http_backend() -> str:
    exec_path = subprocess.run(
        ["git", "--exec-path"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


def _run_git(args: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=dict(env), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise GitCommandError(args, proc.returncode, proc.stderr)
    return proc.stdout.strip()


def _validate_repo_name(name: str) -> None:
    segments = name.split("/")
    if not all(_NAME_SEGMENT.fullmatch(s) and not s.endswith(".git") for s in segments):
        raise ValueError(f"invalid repository name {name!r}")


def _parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class Repo:
    """A bare repository on the server plus a private working clone used to author commits."""

    def __init__(
        self,
        server: GitServer,
        name: str,
        bare_path: Path,
        work_path: Path,
        default_branch: str,
        token: str | None,
    ) -> None:
        self._server = server
        self.name = name
        self._bare_path = bare_path
        self._work_path = work_path
        self.default_branch = default_branch
        self.token = token
        # Tests may author commits from several threads; the shared worktree must not interleave.
        self._lock = threading.Lock()

    @property
    def bare_path(self) -> Path:
        return self._bare_path

    @property
    def url(self) -> str:
        return self._server.url(self.name)

    def _git(self, *args: str, bare: bool = False) -> str:
        cwd = self._bare_path if bare else self._work_path
        return _run_git(list(args), cwd, self._server.git_env)

    def _ref_exists(self, ref: str, *, bare: bool = False) -> bool:
        try:
            self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", bare=bare)
        except GitCommandError:
            return False
        return True

    def _checkout(self, branch: str) -> None:
        # The bare repo is the source of truth (HTTP pushes and delete_branch change it behind
        # the worktree's back), so always start from what it holds now.
        self._git("fetch", "--quiet", "--prune", "origin")
        for start in (branch, self.default_branch):
            if self._ref_exists(f"refs/remotes/origin/{start}"):
                self._git("checkout", "--quiet", "--force", "-B", branch, f"origin/{start}")
                self._git("clean", "--quiet", "-fdx")
                return
        # Nothing to branch from yet: the first commit of the repository.
        self._git("checkout", "--quiet", "--force", "--orphan", branch)
        self._git("rm", "-r", "--quiet", "--force", "--ignore-unmatch", "--cached", ".")
        self._git("clean", "--quiet", "-fdx")

    def _write(self, path: str, content: str | bytes | None) -> None:
        rel = PurePosixPath(path)
        if rel.is_absolute() or not rel.parts or any(p in ("..", ".git") for p in rel.parts):
            raise ValueError(f"invalid file path {path!r}")
        target = self._work_path.joinpath(*rel.parts)
        if content is None:
            target.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)

    def commit(
        self,
        files: Mapping[str, str | bytes | None],
        message: str,
        branch: str = "main",
        symlinks: Mapping[str, str] | None = None,
    ) -> str:
        """Write `files` (None deletes) and `symlinks` (path -> where it points, verbatim),
        commit, push to the bare repo; return the new SHA.

        A branch that does not exist yet starts from the default branch head."""
        with self._lock:
            self._checkout(branch)
            for path, content in files.items():
                self._write(path, content)
            for path, points_to in (symlinks or {}).items():
                self._write(path, None)
                link = self._work_path / path
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(points_to)
            self._git("add", "--all")
            # Empty commits are allowed so a test can always produce a fresh SHA to deploy.
            self._git("commit", "--quiet", "--allow-empty", "--no-verify", "-m", message)
            self._git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
            return self._git("rev-parse", "HEAD")

    def head(self, branch: str = "main") -> str:
        """Full SHA the bare repo's `branch` points at; KeyError if there is no such branch."""
        ref = f"refs/heads/{branch}"
        if not self._ref_exists(ref, bare=True):
            raise KeyError(branch)
        return self._git("rev-parse", ref, bare=True)

    def delete_branch(self, branch: str) -> None:
        """Remove `branch` from the bare repo; KeyError if there is no such branch."""
        ref = f"refs/heads/{branch}"
        with self._lock:
            if not self._ref_exists(ref, bare=True):
                raise KeyError(branch)
            self._git("update-ref", "-d", ref, bare=True)


class _GitHTTPServer(LoopbackHTTPServer):
    def __init__(self, git: GitServer) -> None:
        self.git = git
        # Handlers are joined on close: stop() must leave no stray threads or CGI processes.
        super().__init__(_Handler, join_handlers=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hooksync-test-git/1"
    # A client that goes quiet must not keep a handler thread (and stop()) waiting forever.
    timeout = 30

    @property
    def git(self) -> GitServer:
        return cast(_GitHTTPServer, self.server).git

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        status = 500
        try:
            status = self._dispatch()
        finally:
            self.git._record(RequestRecord(self.command, self.path, status))

    def _dispatch(self) -> int:
        split = urlsplit(self.path)
        path_info = unquote(split.path)
        if not self.git.available:
            return self._reply(503, "Service Unavailable", {"Retry-After": "1"})
        credentials = _parse_basic_auth(self.headers.get("Authorization"))
        expected = self.git._token_for(path_info)
        if expected is not None and not (
            credentials is not None
            and hmac.compare_digest(credentials[1].encode(), expected.encode())
        ):
            return self._reply(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="git"'})
        # Dot segments would reach outside the project root or into the helper worktrees.
        if any(part.startswith(".") for part in path_info.split("/")):
            return self._reply(404, "Not Found", {})
        return self._run_cgi(path_info, split.query, credentials)

    def _reply(self, status: int, text: str, headers: Mapping[str, str]) -> int:
        body = f"{text}\n".encode()
        # The request body (if any) is left unread, so the connection cannot be reused.
        self.close_connection = True
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        return status

    def _cgi_env(
        self, path_info: str, query: str, credentials: tuple[str, str] | None, chunked: bool
    ) -> dict[str, str]:
        env = self.git.git_env | {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": self.request_version,
            "SERVER_SOFTWARE": self.server_version,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.git.port),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROJECT_ROOT": str(self.git.root),
            "GIT_HTTP_EXPORT_ALL": "1",
        }
        optional = {
            "CONTENT_TYPE": self.headers.get("Content-Type"),
            # With a chunked body there is no length; http-backend then reads stdin to EOF.
            "CONTENT_LENGTH": None if chunked else self.headers.get("Content-Length"),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding"),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol"),
            "REMOTE_USER": credentials[0] if credentials and credentials[0] else None,
            "AUTH_TYPE": "Basic" if credentials else None,
        }
        env.update({key: value for key, value in optional.items() if value is not None})
        return env

    def _read_body(self, sink: IO[bytes], chunked: bool) -> None:
        if chunked:
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Skip trailers up to the blank line that ends the message.
                    while self.rfile.readline(1024).strip():
                        pass
                    return
                self._copy_exact(size, sink)
                self.rfile.readline(8)
        else:
            self._copy_exact(int(self.headers.get("Content-Length") or 0), sink)

    def _copy_exact(self, size: int, sink: IO[bytes]) -> None:
        while size > 0:
            data = self.rfile.read(min(size, _COPY_CHUNK))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            sink.write(data)
            size -= len(data)

    def _feed(self, sink: IO[bytes], chunked: bool, failed: threading.Event) -> None:
        try:
            self._read_body(sink, chunked)
        except (OSError, ValueError):
            failed.set()
        finally:
            with contextlib.suppress(OSError):
                sink.close()

    def _run_cgi(self, path_info: str, query: str, credentials: tuple[str, str] | None) -> int:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        has_body = chunked or int(self.headers.get("Content-Length") or 0) > 0
        proc = subprocess.Popen(
            [_http_backend()],
            env=self._cgi_env(path_info, query, credentials, chunked),
            stdin=subprocess.PIPE if has_body else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            # Inherited stderr lands in pytest's captured output, where failures show it.
            stderr=None,
        )
        assert proc.stdout is not None
        feed_failed = threading.Event()
        feeder: threading.Thread | None = None
        if has_body:
            assert proc.stdin is not None
            # Fed from a separate thread so a CGI that answers before reading everything
            # cannot deadlock against us.
            feeder = threading.Thread(
                target=self._feed, args=(proc.stdin, chunked, feed_failed), daemon=True
            )
            feeder.start()
        try:
            return self._relay_response(proc.stdout)
        except OSError:
            self.close_connection = True
            proc.kill()
            # The client went away mid-response; nginx's 499 keeps that visible in the log.
            return 499
        finally:
            proc.stdout.close()
            proc.wait()
            if feeder is not None:
                feeder.join()
            if feed_failed.is_set():
                self.close_connection = True

    def _relay_response(self, stdout: IO[bytes]) -> int:
        status, reason = 200, "OK"
        headers: list[tuple[str, str]] = []
        content_length: str | None = None
        while line := stdout.readline().rstrip(b"\r\n"):
            key, _, value = line.decode("latin-1").partition(":")
            key, value = key.strip(), value.strip()
            if key.lower() == "status":
                code, _, reason = value.partition(" ")
                status = int(code)
            elif key.lower() == "content-length":
                content_length = value
            elif key.lower() not in _FRAMING_HEADERS:
                headers.append((key, value))
        # Without a length, HTTP/1.1 clients get chunks and keep the connection; HTTP/1.0
        # clients learn where the body ends from the connection closing.
        chunked = content_length is None and self.request_version == "HTTP/1.1"
        self.send_response(status, reason or None)
        for key, value in headers:
            self.send_header(key, value)
        if content_length is not None:
            self.send_header("Content-Length", content_length)
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        while data := cast(Any, stdout).read1(_COPY_CHUNK):
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return status


class GitServer:
    """Serves bare repositories under `root` at http://127.0.0.1:PORT/<name>.git.

    With `token`, every request needs HTTP Basic auth whose password is the token."""

    def __init__(self, root: Path | str, *, token: str | None = None) -> None:
        self.root = Path(root)
        self.token = token
        self.available = True
        self._work_root = self.root / ".work"
        self.git_env = isolated_git_env(self.root / ".home")
        self._repos: dict[str, Repo] = {}
        self._requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._httpd: _GitHTTPServer | None = None

    def __enter__(self) -> GitServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._httpd is not None:
            raise RuntimeError("GitServer already started")
        self._httpd = _GitHTTPServer(self)
        self._httpd.serve_in_background(f"git-server-{self.port}")

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.close()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("GitServer not started")
        return self._httpd.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        """Clone URL of repository `name`, without credentials."""
        return f"{self.base_url}/{name}.git"

    def set_available(self, available: bool) -> None:
        """False makes every request answer 503, as a Git host outage would."""
        self.available = available

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of the requests answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def create_repo(
        self, name: str, default_branch: str = "main", *, token: str | None = None
    ) -> Repo:
        """Create bare repo `<root>/<name>.git`; `token`, if given, replaces the server's
        token for this repository."""
        _validate_repo_name(name)
        with self._lock:
            if name in self._repos:
                raise ValueError(f"repository {name!r} already exists")
            bare = self.root / f"{name}.git"
            work = self._work_root / name
            bare.parent.mkdir(parents=True, exist_ok=True)
            work.parent.mkdir(parents=True, exist_ok=True)
            env = self.git_env
            _run_git(
                ["init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(bare)],
                self.root,
                env,
            )
            for key, value in (
                ("http.receivepack", "true"),
                # Clients fetch exact commits by SHA, which protocol v0 refuses without this.
                ("uploadpack.allowReachableSHA1InWant", "true"),
                ("uploadpack.allowAnySHA1InWant", "true"),
                ("gc.auto", "0"),
            ):
                _run_git(["config", key, value], bare, env)
            _run_git(["clone", "--quiet", str(bare), str(work)], self.root, env)
            repo = Repo(self, name, bare, work, default_branch, token)
            self._repos[name] = repo
            return repo

    def repo(self, name: str) -> Repo:
        with self._lock:
            return self._repos[name]

    def _token_for(self, path_info: str) -> str | None:
        with self._lock:
            repos = list(self._repos.values())
        for repo in repos:
            prefix = f"/{repo.name}.git"
            if repo.token is not None and (
                path_info == prefix or path_info.startswith(prefix + "/")
            ):
                return repo.token
        return self.token
