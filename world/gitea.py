"""A real Gitea for the test world: the binary built from Go modules into the cache by
`hack/build-binaries gitea` (on first use), run on loopback with SQLite in a scratch folder.

The admin is created with Gitea's CLI; tokens, organisations, repositories, forks, webhooks and
pull requests through its API. Commits are pushed over its HTTP, so Gitea's own hooks send the
webhooks. Gitea 1.26 has no API for its delivery log, so `deliveries` reads the `hook_task`
table of the SQLite database (read-only).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import secrets
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from world.controlplane import free_port
from world.gitserver import isolated_git_env

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPOSITORY_ROOT / "hack" / "build-binaries"
ADMIN = "hooksync-admin"
ADMIN_EMAIL = "admin@hooksync.test"


def gitea_folder() -> Path:
    """The folder holding the `gitea` binary and its source copy; builds both the first time
    (about ten minutes on two cores), then only prints where they are."""
    answer = subprocess.run(
        [str(BUILD_SCRIPT), "gitea"], capture_output=True, text=True, cwd=REPOSITORY_ROOT
    )
    if answer.returncode != 0:
        raise RuntimeError(f"hack/build-binaries gitea failed:\n{answer.stderr[-3000:]}")
    return Path(answer.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery from Gitea's log: what it sent, and what the receiver answered."""

    id: int
    hook_id: int
    event_type: str  # Gitea's finer event name: push, pull_request, pull_request_sync, ...
    payload: dict[str, Any]
    request_headers: dict[str, str]
    request_body: str
    status: int
    response_body: str

    def answer(self) -> dict[str, Any]:
        try:
            document: dict[str, Any] = json.loads(self.response_body)
        except ValueError:
            return {}
        return document


class GiteaServer:
    """`gitea web` on 127.0.0.1 with SQLite under `directory`; stopped and left on disk by
    `stop` (the folder is the caller's scratch space)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.token = ""  # the admin's API token, once started
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0  # seconds from exec to a healthy API, for the record
        self._log: IO[bytes] | None = None
        self._config = directory / "app.ini"
        self._database = directory / "data" / "gitea.db"
        self._binary: Path | None = None
        self._api: httpx.Client | None = None
        self._git_env = isolated_git_env(directory / "git-home")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    def clone_url(self, repo: str) -> str:
        return f"{self.url}/{repo}.git"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> GiteaServer:
        folder = gitea_folder()
        self._binary = folder / "gitea"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._config.write_text(self._app_ini(folder))
        self._log = (self.directory / "gitea.log").open("ab")
        began = time.monotonic()
        self.process = subprocess.Popen(
            [
                str(self._binary),
                "web",
                "--config",
                str(self._config),
                "--work-path",
                str(self.directory),
                "--quiet",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env(),
            cwd=self.directory,
            start_new_session=True,
        )
        try:
            self._wait_healthy(timeout)
            self.started_in = time.monotonic() - began
            self._cli(
                "admin",
                "user",
                "create",
                "--username",
                ADMIN,
                "--password",
                self.password,
                "--email",
                ADMIN_EMAIL,
                "--admin",
                "--must-change-password=false",
            )
            self.token = self.create_token(
                ADMIN,
                "world",
                [
                    "write:admin",
                    "write:organization",
                    "write:repository",
                    "write:user",
                    "write:issue",
                ],
            )
            self._api = httpx.Client(
                base_url=self.api_url,
                headers={"Authorization": f"token {self.token}"},
                timeout=30,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> GiteaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return (self.directory / "gitea.log").read_text(errors="replace")
        except OSError:
            return ""

    # -- through the API -----------------------------------------------------------------

    def create_token(self, user: str, name: str, scopes: list[str]) -> str:
        """A new access token of `user` (the admin may make them for anyone, with Sudo)."""
        password_auth = base64.b64encode(f"{ADMIN}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {password_auth}"}
        if user != ADMIN:
            headers["Sudo"] = user
        answer = httpx.post(
            f"{self.api_url}/users/{user}/tokens",
            json={"name": name, "scopes": scopes},
            headers=headers,
            timeout=30,
        )
        _check(answer, f"token {name!r} for {user}")
        return str(answer.json()["sha1"])

    def create_user(self, name: str) -> None:
        self._call(
            "POST",
            "/admin/users",
            {
                "username": name,
                "email": f"{name}@hooksync.test",
                "password": secrets.token_hex(12),
                "must_change_password": False,
            },
        )

    def create_org(self, name: str) -> None:
        self._call("POST", "/orgs", {"username": name, "visibility": "public"})

    def create_repo(self, repo: str, *, private: bool = True) -> GiteaRepo:
        """An empty repository `owner/name` (the owner an organisation), main as its default."""
        owner, name = repo.split("/")
        self._call(
            "POST",
            f"/orgs/{owner}/repos",
            {"name": name, "private": private, "default_branch": "main", "auto_init": False},
        )
        return self.repo(repo)

    def fork(self, repo: str, user: str) -> GiteaRepo:
        """`user`'s fork of `repo`, made as that user."""
        self._call("POST", f"/repos/{repo}/forks", {}, sudo=user)
        return self.repo(f"{user}/{repo.split('/')[1]}")

    def repo(self, repo: str) -> GiteaRepo:
        """A working clone of `repo` to push commits from, as the admin."""
        return GiteaRepo(self, repo, self.directory / "work" / repo, self._git_env)

    def add_webhook(
        self,
        repo: str,
        url: str,
        secret: str,
        *,
        content_type: str = "json",
        events: tuple[str, ...] = ("push", "pull_request", "pull_request_sync"),
    ) -> int:
        """A `gitea` webhook on `repo` to `url`; returns its id."""
        hook = self._call(
            "POST",
            f"/repos/{repo}/hooks",
            {
                "type": "gitea",
                "active": True,
                "branch_filter": "*",
                "events": list(events),
                "config": {"url": url, "content_type": content_type, "secret": secret},
            },
        )
        return int(hook["id"])

    def remove_webhook(self, repo: str, hook_id: int) -> None:
        self._call("DELETE", f"/repos/{repo}/hooks/{hook_id}", None)

    def add_collaborator(self, repo: str, user: str, permission: str) -> None:
        self._call("PUT", f"/repos/{repo}/collaborators/{user}", {"permission": permission})

    def test_delivery(self, repo: str, hook_id: int) -> None:
        """Gitea's "test delivery": a push of the default branch head, again, to one webhook."""
        self._call("POST", f"/repos/{repo}/hooks/{hook_id}/tests", None)

    def open_pull_request(
        self, repo: str, head: str, base: str = "main", *, sudo: str | None = None
    ) -> int:
        """A pull request into `base` of `repo` from branch `head` (`user:branch` for a fork)."""
        pull = self._call(
            "POST",
            f"/repos/{repo}/pulls",
            {"head": head, "base": base, "title": f"From {head}"},
            sudo=sudo,
        )
        return int(pull["number"])

    def pull_requests(self, repo: str) -> list[dict[str, Any]]:
        """The open pull requests into `repo`."""
        pulls: list[dict[str, Any]] = self._call("GET", f"/repos/{repo}/pulls?state=open", None)
        return pulls

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """The comments on issue or pull request `number`, oldest first (Gitea lists them
        all in one answer)."""
        found: list[dict[str, Any]] = self._call(
            "GET", f"/repos/{repo}/issues/{number}/comments", None
        )
        return found

    def comment(self, repo: str, number: int, body: str, *, sudo: str | None = None) -> None:
        """Comment on `number` as the admin, or as user `sudo`."""
        self._call("POST", f"/repos/{repo}/issues/{number}/comments", {"body": body}, sudo=sudo)

    def statuses(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """The commit statuses on `sha`, oldest first, as Gitea's API returns them."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self._call("GET", f"/repos/{repo}/statuses/{sha}?page={page}&limit=50", None)
            found.extend(batch)
            if len(batch) < 50:
                return sorted(found, key=lambda status: int(status["id"]))
            page += 1

    def _call(self, method: str, path: str, body: Any, *, sudo: str | None = None) -> Any:
        assert self._api is not None, "Gitea is not started"
        headers = {"Sudo": sudo} if sudo else {}
        answer = self._api.request(method, path, json=body, headers=headers)
        _check(answer, f"{method} {path}")
        return answer.json() if answer.content else None

    # -- the delivery log ------------------------------------------------------------------

    def deliveries(self, hook_id: int | None = None) -> list[Delivery]:
        """Every delivery Gitea has finished, oldest first. Gitea marks a task delivered before
        it sends it, and records the answer after; only then is it listed here."""
        uri = f"file:{self._database}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            rows = db.execute(
                "SELECT id, hook_id, event_type, payload_content, request_content, "
                "response_content FROM hook_task WHERE is_delivered = 1 AND response_content != '' "
                "ORDER BY id"
            ).fetchall()
        found = []
        for task_id, hook, event_type, payload, request, response in rows:
            if hook_id is not None and hook != hook_id:
                continue
            request_info = json.loads(request or "{}")
            response_info = json.loads(response or "{}")
            found.append(
                Delivery(
                    id=task_id,
                    hook_id=hook,
                    event_type=event_type,
                    payload=json.loads(payload or "{}"),
                    request_headers=request_info.get("headers") or {},
                    request_body=request_info.get("body") or "",
                    status=int(response_info.get("status") or 0),
                    response_body=response_info.get("body") or "",
                )
            )
        return found

    def wait_delivery(
        self,
        matches: Callable[[Delivery], bool],
        what: str,
        *,
        after: int = 0,
        timeout: float = 60.0,
    ) -> Delivery:
        """The first delivery with an id above `after` that `matches` (a predicate) accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for delivery in self.deliveries():
                if delivery.id > after and matches(delivery):
                    return delivery
            if time.monotonic() > deadline:
                raise TimeoutError(f"Gitea delivered no {what} within {timeout}s")
            time.sleep(0.2)

    def last_delivery_id(self) -> int:
        deliveries = self.deliveries()
        return deliveries[-1].id if deliveries else 0

    # -- the process -------------------------------------------------------------------------

    def _app_ini(self, folder: Path) -> str:
        data = self.directory / "data"
        return f"""\
APP_NAME = hooksync test world
RUN_USER = {_user()}
RUN_MODE = prod
WORK_PATH = {self.directory}
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {self.port}
ROOT_URL = {self.url}/
LOCAL_ROOT_URL = {self.url}/
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false
OFFLINE_MODE = true
APP_DATA_PATH = {data}
STATIC_ROOT_PATH = {folder}

[database]
DB_TYPE = sqlite3
PATH = {self._database}
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = {self.directory / "repositories"}
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = {secrets.token_hex(32)}
INTERNAL_TOKEN = {secrets.token_hex(40)}
PASSWORD_HASH_ALGO = pbkdf2_v1
MIN_PASSWORD_LENGTH = 8
PASSWORD_COMPLEXITY = off

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true
DEFAULT_ALLOW_CREATE_ORGANIZATION = true

[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 30

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[queue]
TYPE = channel

[mailer]
ENABLED = false

[cron]
ENABLED = false

[cron.update_checker]
ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = {self.directory / "log"}
"""

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITEA_", "GIT_"))}
        env.update({"HOME": str(self.directory / "home"), "GITEA_WORK_DIR": str(self.directory)})
        return env

    def _cli(self, *args: str) -> str:
        assert self._binary is not None
        answer = subprocess.run(
            [
                str(self._binary),
                "--config",
                str(self._config),
                "--work-path",
                str(self.directory),
                *args,
            ],
            capture_output=True,
            text=True,
            env=self._env(),
            cwd=self.directory,
            timeout=120,
        )
        if answer.returncode != 0:
            raise RuntimeError(f"gitea {' '.join(args[:3])} failed: {answer.stderr[-2000:]}")
        return answer.stdout

    def _wait_healthy(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gitea exited at start-up:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gitea not healthy after {timeout}s:\n{self.log()[-3000:]}")


class GiteaRepo:
    """A working clone of one Gitea repository; `commit` pushes over Gitea's HTTP as the admin,
    so Gitea's hooks run and its webhooks go out as for any push."""

    def __init__(self, server: GiteaServer, name: str, work: Path, env: dict[str, str]) -> None:
        self.server = server
        self.name = name
        self._work = work
        self._env = env
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.server.clone_url(self.name)

    def commit(
        self, files: Mapping[str, str | bytes | None], message: str, branch: str = "main"
    ) -> str:
        """Write `files` (None deletes), commit and push to `branch`; return the new SHA.

        A branch that does not exist yet starts from main (or from nothing in an empty
        repository)."""
        with self._lock:
            self._checkout(branch)
            for path, content in files.items():
                target = self._work / path
                if content is None:
                    target.unlink(missing_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    target.write_text(content)
            self._git("add", "--all")
            self._git("commit", "--quiet", "--allow-empty", "--no-verify", "-m", message)
            self._git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
            return self._git("rev-parse", "HEAD")

    def tag(self, name: str, branch: str = "main") -> str:
        """Push a lightweight tag `name` at the head of `branch`; return the commit it names."""
        with self._lock:
            self._checkout(branch)
            self._git("tag", "--force", name)
            self._git("push", "--quiet", "origin", f"refs/tags/{name}")
            return self._git("rev-parse", "HEAD")

    def _checkout(self, branch: str) -> None:
        if not (self._work / ".git").exists():
            self._work.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", "--initial-branch", "main")
            self._git("remote", "add", "origin", self.url)
        self._git("fetch", "--quiet", "--prune", "origin")
        for start in (branch, "main"):
            if self._has(f"refs/remotes/origin/{start}"):
                self._git("checkout", "--quiet", "--force", "-B", branch, f"origin/{start}")
                self._git("clean", "--quiet", "-fdx")
                return
        self._git("checkout", "--quiet", "--force", "--orphan", branch)

    def _has(self, ref: str) -> bool:
        try:
            self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except RuntimeError:
            return False
        return True

    def _git(self, *args: str) -> str:
        basic = base64.b64encode(f"{ADMIN}:{self.server.token}".encode()).decode()
        command = ["git", "-c", f"http.extraHeader=Authorization: Basic {basic}", *args]
        answer = subprocess.run(
            command, cwd=self._work, env=self._env, capture_output=True, text=True, timeout=120
        )
        if answer.returncode != 0:
            raise RuntimeError(f"git {args[0]} in {self.name}: {answer.stderr.strip()[-1000:]}")
        return answer.stdout.strip()


def _check(answer: httpx.Response, what: str) -> None:
    if answer.status_code >= 300:
        raise RuntimeError(f"Gitea refused {what}: {answer.status_code} {answer.text[:500]}")


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name
