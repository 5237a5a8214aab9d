"""A stand-in for GitLab's REST API (/api/v4) as hooksync uses it: commits and commit statuses,
merge request notes, environments and deployments."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from world.githosts._server import (
    SHA_PATTERN,
    Fault,
    Reply,
    Request,
    RouteHandler,
    StandIn,
    bearer_token,
    iso_time,
    link_header,
    paginate,
    phrase,
    same_secret,
)

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
    # Merge request iid -> its notes, oldest first.
    notes: dict[int, list[_GitLabNote]] = field(default_factory=dict)
    environments: list[_GitLabEnvironment] = field(default_factory=list)
    deployments: list[_GitLabDeployment] = field(default_factory=list)


@dataclass
class _GitLabNote:
    id: int
    iid: int
    body: str
    author_id: int
    username: str
    created_at: float
    updated_at: float
    system: bool = False


@dataclass
class _GitLabEnvironment:
    id: int
    name: str
    external_url: str | None
    created_at: float


@dataclass
class _GitLabDeployment:
    id: int
    iid: int
    environment: _GitLabEnvironment
    sha: str
    ref: str
    status: str
    created_at: float
    updated_at: float
    # Every status it went through, oldest first.
    history: list[str] = field(default_factory=list)


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


class GitLabStandIn(StandIn):
    """GitLab's commits and commit-status REST API under `url`/api/v4.

    A status in pending or running is updated in place by the next post for the same
    (sha, name, ref), through GitLab's state machine; after a final state a post makes a new one.
    """

    MAX_DESCRIPTION = 255
    MAX_NOTE = 1_000_000
    # A deployment's status moves from running to one final state (GitLab's state machine
    # for deployments created through the API).
    DEPLOYMENT_STATES = frozenset({"running", "success", "failed", "canceled"})

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
        if not SHA_PATTERN.fullmatch(sha):
            raise ValueError(f"not a full SHA: {sha!r}")
        with self._lock:
            self._project_or_raise(repo).branches[branch] = sha

    def statuses(self, repo: str | int, ref: str) -> list[dict[str, Any]]:
        """Every status record of a commit, oldest first, each in its current state."""
        with self._lock:
            project = self._project_or_raise(repo)
            sha = self._resolve(project, ref)
            return [self._status_json(s) for s in project.statuses if s.sha == sha]

    def notes(self, repo: str | int, iid: int) -> list[dict[str, Any]]:
        """The notes on merge request `iid`, oldest first, as the API renders them."""
        with self._lock:
            project = self._project_or_raise(repo)
            return [self._note_json(project, n) for n in project.notes.get(iid, [])]

    def add_note(
        self, repo: str | int, iid: int, body: str, *, username: str, system: bool = False
    ) -> None:
        """Test shortcut: a note by someone else (or a system note), without HTTP."""
        with self._lock:
            project = self._project_or_raise(repo)
            now = time.time()
            note = _GitLabNote(self._next_id(), iid, body, 999, username, now, now, system)
            project.notes.setdefault(iid, []).append(note)

    def deployments(self, repo: str | int) -> list[dict[str, Any]]:
        """Every deployment, oldest first, with the statuses it went through under
        "history"."""
        with self._lock:
            project = self._project_or_raise(repo)
            return [
                {**self._deployment_json(d), "history": list(d.history)}
                for d in project.deployments
            ]

    # routing

    def _route_specs(self) -> list[tuple[str, str, RouteHandler]]:
        project = r"/projects/(?P<project>[^/]+)"
        return [
            ("GET", r"/user", self._get_user),
            ("GET", r"/version", self._get_version),
            ("GET", project, self._get_project),
            ("GET", project + r"/repository/commits/(?P<sha>[^/]+)", self._get_commit),
            ("GET", project + r"/repository/commits/(?P<sha>[^/]+)/statuses", self._list),
            ("POST", project + r"/statuses/(?P<sha>[^/]+)", self._create_status),
            ("GET", project + r"/merge_requests/(?P<iid>[0-9]+)/notes", self._list_notes),
            ("POST", project + r"/merge_requests/(?P<iid>[0-9]+)/notes", self._create_note),
            (
                "PUT",
                project + r"/merge_requests/(?P<iid>[0-9]+)/notes/(?P<id>[0-9]+)",
                self._edit_note,
            ),
            ("GET", project + r"/environments", self._list_environments),
            ("POST", project + r"/environments", self._create_environment),
            ("PUT", project + r"/environments/(?P<id>[0-9]+)", self._edit_environment),
            ("GET", project + r"/deployments", self._list_deployments),
            ("POST", project + r"/deployments", self._create_deployment),
            ("PUT", project + r"/deployments/(?P<id>[0-9]+)", self._edit_deployment),
        ]

    def _api_path(self, req: Request) -> str | None:
        if not req.path.startswith("/api/v4/"):
            return None
        return req.path.removeprefix("/api/v4")

    def _authorized(self, req: Request) -> bool:
        token = req.headers.get("private-token") or bearer_token(req.headers.get("authorization"))
        return same_secret(token, self.token)

    # replies

    def _unauthorized_reply(self) -> Reply:
        return Reply(401, {"message": "401 Unauthorized"})

    def _no_route_reply(self) -> Reply:
        return Reply(404, {"error": "404 Not Found"})

    def _not_found(self, what: str) -> Reply:
        return Reply(404, {"message": f"404 {what} Not Found"})

    def _fault_reply(self, fault: Fault) -> Reply:
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        if fault.status == 429:
            # GitLab's throttle (Rack::Attack) answers in plain text with RateLimit-* headers.
            reset = time.time() + (fault.retry_after or 0)
            headers |= {
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(math.ceil(reset)),
                "RateLimit-ResetTime": formatdate(reset, usegmt=True),
            }
            return Reply(429, "Retry later\n", headers)
        return Reply(fault.status, {"message": f"{fault.status} {phrase(fault.status)}"}, headers)

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
        return ref.lower() if SHA_PATTERN.fullmatch(ref.lower()) else None

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
            "created_at": iso_time(project.created_at, millis=True),
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
            return None if ts is None else iso_time(ts, millis=True)

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

    def _get_user(self, req: Request, params: dict[str, str]) -> Reply:
        return Reply(200, self._user_json(req.origin))

    def _get_version(self, req: Request, params: dict[str, str]) -> Reply:
        return Reply(200, {"version": "17.0.0-standin", "revision": "standin"})

    def _get_project(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        return Reply(200, self._project_json(req.origin, project))

    def _get_commit(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        sha = self._resolve(project, params["sha"])
        if sha is None:
            return self._not_found("Commit")
        when = iso_time(self._epoch, millis=True)
        return Reply(
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

    def _list(self, req: Request, params: dict[str, str]) -> Reply:
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
        page = paginate(req, found, default=20, maximum=100)
        headers = {
            "X-Page": str(page.page),
            "X-Per-Page": str(page.per_page),
            "X-Total": str(page.total),
            "X-Total-Pages": str(page.last),
            "X-Next-Page": str(page.page + 1) if page.page < page.last else "",
            "X-Prev-Page": str(page.page - 1) if page.page > 1 else "",
            "Link": link_header(page.links),
        }
        return Reply(200, [self._status_json(s) for s in page.items], headers)

    def _create_status(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        sha = self._resolve(project, params["sha"])
        if sha is None:
            return self._not_found("Commit")
        if req.malformed or not isinstance(req.body, dict | None):
            return Reply(400, {"error": "The provided content-type is not supported."})
        # Grape merges query-string and body parameters.
        args: dict[str, Any] = {**req.query, **(req.body or {})}

        state = args.get("state")
        if state is None:
            return Reply(400, {"error": "state is missing"})
        if not isinstance(state, str) or state not in _GITLAB_STATES:
            return Reply(400, {"error": "state does not have a valid value"})
        description = args.get("description")
        if description is not None and len(str(description)) > self.MAX_DESCRIPTION:
            # GitLab stores longer text; this stand-in refuses it because hooksync's client
            # promises to stay within 255 characters and a silent pass would hide a bug.
            limit = self.MAX_DESCRIPTION
            return Reply(400, {"error": f"description is too long (maximum is {limit} characters)"})
        coverage = args.get("coverage")
        try:
            coverage = None if coverage is None else float(coverage)
        except (TypeError, ValueError):
            return Reply(400, {"error": "coverage is invalid"})
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
            return Reply(400, {"message": str(error)})

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
        return Reply(201, self._status_json(current))

    def _default_ref(self, project: _GitLabProject, sha: str) -> str:
        for branch, head in project.branches.items():
            if head == sha:
                return branch
        return project.default_branch

    # notes

    def _note_json(self, project: _GitLabProject, note: _GitLabNote) -> dict[str, Any]:
        author = {**self._user_json(self.base_url), "id": note.author_id, "username": note.username}
        return {
            "id": note.id,
            "type": None,
            "body": note.body,
            "attachment": None,
            "author": author,
            "created_at": iso_time(note.created_at, millis=True),
            "updated_at": iso_time(note.updated_at, millis=True),
            "system": note.system,
            "noteable_id": note.iid + 5_000_000,
            "noteable_type": "MergeRequest",
            "noteable_iid": note.iid,
            "project_id": project.id,
            "resolvable": False,
            "confidential": False,
            "internal": False,
        }

    def _paged(self, req: Request, items: list[Any], render: Any) -> Reply:
        page = paginate(req, items, default=20, maximum=100)
        headers = {
            "X-Page": str(page.page),
            "X-Per-Page": str(page.per_page),
            "X-Total": str(page.total),
            "X-Total-Pages": str(page.last),
            "X-Next-Page": str(page.page + 1) if page.page < page.last else "",
            "X-Prev-Page": str(page.page - 1) if page.page > 1 else "",
            "Link": link_header(page.links),
        }
        return Reply(200, [render(item) for item in page.items], headers)

    def _note_body(self, req: Request) -> str | Reply:
        if req.malformed or not isinstance(req.body, dict | None):
            return Reply(400, {"error": "The provided content-type is not supported."})
        args: dict[str, Any] = {**req.query, **(req.body or {})}
        body = args.get("body")
        if not isinstance(body, str) or not body:
            return Reply(400, {"error": "body is missing"})
        if len(body) > self.MAX_NOTE:
            limit = self.MAX_NOTE
            return Reply(
                400, {"message": {"note": [f"is too long (maximum is {limit} characters)"]}}
            )
        return body

    def _list_notes(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        found = list(project.notes.get(int(params["iid"]), []))
        # GitLab lists notes newest first unless asked otherwise.
        if req.query.get("sort", "desc") == "desc":
            found.reverse()
        return self._paged(req, found, lambda n: self._note_json(project, n))

    def _create_note(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        body = self._note_body(req)
        if isinstance(body, Reply):
            return body
        now, iid = time.time(), int(params["iid"])
        note = _GitLabNote(self._next_id(), iid, body, 1, self.username, now, now)
        project.notes.setdefault(iid, []).append(note)
        return Reply(201, self._note_json(project, note))

    def _edit_note(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        wanted = int(params["id"])
        note = next((n for n in project.notes.get(int(params["iid"]), []) if n.id == wanted), None)
        if note is None:
            return self._not_found("Note")
        if note.username != self.username:
            return Reply(403, {"message": "403 Forbidden"})
        body = self._note_body(req)
        if isinstance(body, Reply):
            return body
        note.body, note.updated_at = body, time.time()
        return Reply(200, self._note_json(project, note))

    # environments and deployments

    def _environment_json(self, environment: _GitLabEnvironment) -> dict[str, Any]:
        return {
            "id": environment.id,
            "name": environment.name,
            "slug": environment.name.lower().replace(" ", "-").replace("/", "-"),
            "external_url": environment.external_url,
            "state": "available",
            "tier": "other",
            "created_at": iso_time(environment.created_at, millis=True),
            "updated_at": iso_time(environment.created_at, millis=True),
        }

    def _deployment_json(self, deployment: _GitLabDeployment) -> dict[str, Any]:
        return {
            "id": deployment.id,
            "iid": deployment.iid,
            "ref": deployment.ref,
            "sha": deployment.sha,
            "status": deployment.status,
            "created_at": iso_time(deployment.created_at, millis=True),
            "updated_at": iso_time(deployment.updated_at, millis=True),
            "user": self._user_json(self.base_url),
            "environment": self._environment_json(deployment.environment),
            "deployable": None,
        }

    def _args(self, req: Request) -> dict[str, Any] | Reply:
        if req.malformed or not isinstance(req.body, dict | None):
            return Reply(400, {"error": "The provided content-type is not supported."})
        return {**req.query, **(req.body or {})}

    def _list_environments(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        found = [e for e in project.environments if req.query.get("name") in (None, e.name)]
        return self._paged(req, found, self._environment_json)

    def _create_environment(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        args = self._args(req)
        if isinstance(args, Reply):
            return args
        name = args.get("name")
        if not isinstance(name, str) or not name:
            return Reply(400, {"error": "name is missing"})
        if any(e.name == name for e in project.environments):
            return Reply(400, {"message": {"name": ["has already been taken"]}})
        url = args.get("external_url")
        environment = _GitLabEnvironment(
            self._next_id(), name, str(url) if url else None, time.time()
        )
        project.environments.append(environment)
        return Reply(201, self._environment_json(environment))

    def _edit_environment(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        wanted = int(params["id"])
        environment = next((e for e in project.environments if e.id == wanted), None)
        if environment is None:
            return self._not_found("Environment")
        args = self._args(req)
        if isinstance(args, Reply):
            return args
        if "external_url" in args:
            environment.external_url = str(args["external_url"]) or None
        return Reply(200, self._environment_json(environment))

    def _list_deployments(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        found = [
            d
            for d in project.deployments
            if req.query.get("environment") in (None, d.environment.name)
        ]
        return self._paged(req, found, self._deployment_json)

    def _create_deployment(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        args = self._args(req)
        if isinstance(args, Reply):
            return args
        for required in ("environment", "sha", "ref", "tag", "status"):
            if args.get(required) in (None, ""):
                return Reply(400, {"error": f"{required} is missing"})
        sha = self._resolve(project, str(args["sha"]))
        if sha is None:
            return Reply(400, {"message": "The SHA is not a commit of this project"})
        status = args["status"]
        if status not in self.DEPLOYMENT_STATES:
            return Reply(400, {"error": "status does not have a valid value"})
        # GitLab finds the environment by name, or creates it.
        name = str(args["environment"])
        environment = next((e for e in project.environments if e.name == name), None)
        now = time.time()
        if environment is None:
            environment = _GitLabEnvironment(self._next_id(), name, None, now)
            project.environments.append(environment)
        iid = 1 + len(project.deployments)
        deployment = _GitLabDeployment(
            self._next_id(), iid, environment, sha, str(args["ref"]), status, now, now, [status]
        )
        project.deployments.append(deployment)
        return Reply(201, self._deployment_json(deployment))

    def _edit_deployment(self, req: Request, params: dict[str, str]) -> Reply:
        project = self._find(params["project"])
        if project is None:
            return self._not_found("Project")
        wanted = int(params["id"])
        deployment = next((d for d in project.deployments if d.id == wanted), None)
        if deployment is None:
            return self._not_found("Deployment")
        args = self._args(req)
        if isinstance(args, Reply):
            return args
        status = args.get("status")
        if status not in self.DEPLOYMENT_STATES:
            return Reply(400, {"error": "status does not have a valid value"})
        if deployment.status != "running" and status != deployment.status:
            return Reply(
                400,
                {"message": f"Cannot transition status via :{status} from :{deployment.status}"},
            )
        deployment.status, deployment.updated_at = str(status), time.time()
        deployment.history.append(str(status))
        return Reply(200, self._deployment_json(deployment))
