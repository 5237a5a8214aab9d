"""A stand-in for GitHub's REST API as hooksync uses it (api.github.com and Enterprise /api/v3):
commit statuses, issue comments on pull requests, deployments and their statuses."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
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

_GITHUB_STATES = frozenset({"error", "failure", "pending", "success"})
_DEPLOYMENT_STATES = frozenset(
    {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
)
_COMMENT_DOCS = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
_DEPLOYMENT_STATUS_DOCS = (
    "https://docs.github.com/rest/deployments/statuses#create-a-deployment-status"
)
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
    # Issue (pull request) number -> its comments, oldest first.
    comments: dict[int, list[_GitHubComment]] = field(default_factory=dict)
    deployments: list[_GitHubDeployment] = field(default_factory=list)

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


@dataclass
class _GitHubComment:
    id: int
    number: int
    body: str
    login: str
    created_at: float
    updated_at: float


@dataclass
class _GitHubDeployment:
    id: int
    sha: str
    ref: str
    environment: str
    description: str | None
    created_at: float
    statuses: list[dict[str, Any]] = field(default_factory=list)


class GitHubStandIn(StandIn):
    """GitHub's commit-status REST API, at `api_url` and, Enterprise style, at `enterprise_api_url`.

    Any 40-hex SHA counts as a commit of a registered repository; branches are named with
    set_branch(). The primary rate limit counts authenticated requests like GitHub's does.
    """

    MAX_DESCRIPTION = 140
    MAX_STATUSES_PER_CONTEXT = 1000
    MAX_COMMENT = 65_536

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
        if not SHA_PATTERN.fullmatch(sha):
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

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """The comments on issue or pull request `number`, oldest first, as the API renders
        them."""
        with self._lock:
            found = self._repo_or_raise(repo)
            return [
                self._comment_json(self.api_url, found, c) for c in found.comments.get(number, [])
            ]

    def add_comment(self, repo: str, number: int, body: str, *, login: str) -> None:
        """Test shortcut: a comment by someone else (`login`), without HTTP."""
        with self._lock:
            found = self._repo_or_raise(repo)
            now = time.time()
            comment = _GitHubComment(self._next_id(), number, body, login, now, now)
            found.comments.setdefault(number, []).append(comment)

    def deployments(self, repo: str) -> list[dict[str, Any]]:
        """Every deployment, oldest first, each with its statuses (oldest first) under
        "statuses"."""
        with self._lock:
            found = self._repo_or_raise(repo)
            return [
                {**self._deployment_json(self.api_url, found, d), "statuses": list(d.statuses)}
                for d in found.deployments
            ]

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

    def _route_specs(self) -> list[tuple[str, str, RouteHandler]]:
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
            ("GET", repo + r"/issues/(?P<number>[0-9]+)/comments", self._list_comments),
            ("POST", repo + r"/issues/(?P<number>[0-9]+)/comments", self._create_comment),
            ("PATCH", repo + r"/issues/comments/(?P<id>[0-9]+)", self._edit_comment),
            ("GET", repo + r"/deployments", self._list_deployments),
            ("POST", repo + r"/deployments", self._create_deployment),
            ("GET", repo + r"/deployments/(?P<id>[0-9]+)/statuses", self._list_deployment_statuses),
            (
                "POST",
                repo + r"/deployments/(?P<id>[0-9]+)/statuses",
                self._create_deployment_status,
            ),
        ]

    def _api_path(self, req: Request) -> str | None:
        if req.path == "/api/v3" or req.path.startswith("/api/v3/"):
            return req.path.removeprefix("/api/v3") or "/"
        return req.path

    def _api_base(self, req: Request) -> str:
        enterprise = req.path == "/api/v3" or req.path.startswith("/api/v3/")
        return req.origin + ("/api/v3" if enterprise else "")

    def _authorized(self, req: Request) -> bool:
        return same_secret(bearer_token(req.headers.get("authorization")), self.token)

    # replies

    def _error(
        self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> Reply:
        body = {"message": message, "documentation_url": _GITHUB_DOCS, **extra}
        body["status"] = str(status)
        return Reply(status, body, headers or {})

    def _unauthorized_reply(self) -> Reply:
        return self._error(401, "Bad credentials")

    def _no_route_reply(self) -> Reply:
        return self._error(404, "Not Found")

    def _down_reply(self) -> Reply:
        return Reply(503, {"message": "Service Unavailable"})

    def _fault_reply(self, fault: Fault) -> Reply:
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        if fault.status in (403, 429):
            return self._error(
                fault.status,
                _GITHUB_SECONDARY_LIMIT,
                documentation_url=_GITHUB_LIMITS_DOCS,
                headers=headers,
            )
        return self._error(fault.status, phrase(fault.status), headers=headers)

    def _validation_failed(self, *errors: dict[str, str]) -> Reply:
        return self._error(
            422, "Validation Failed", errors=list(errors), documentation_url=_GITHUB_STATUS_DOCS
        )

    def _throttle(self, req: Request) -> Reply | None:
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

    def _decorate(self, reply: Reply) -> Reply:
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
        return ref.lower() if SHA_PATTERN.fullmatch(ref.lower()) else None

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
            "created_at": iso_time(repo.created_at),
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
            "created_at": iso_time(status.created_at),
            "updated_at": iso_time(status.created_at),
            "creator": self._user_json(api),
        }

    # handlers

    def _get_user(self, req: Request, params: dict[str, str]) -> Reply:
        return Reply(200, self._user_json(self._api_base(req)))

    def _get_rate_limit(self, req: Request, params: dict[str, str]) -> Reply:
        rate = self._rate_json()
        return Reply(200, {"resources": {"core": {**rate, "resource": "core"}}, "rate": rate})

    def _lookup(self, params: dict[str, str]) -> _GitHubRepo | None:
        return self._repos.get(f"{params['owner']}/{params['repo']}".lower())

    def _get_repo(self, req: Request, params: dict[str, str]) -> Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        return Reply(200, self._repo_json(self._api_base(req), repo))

    def _get_commit(self, req: Request, params: dict[str, str]) -> Reply:
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
            "date": iso_time(self._epoch),
        }
        return Reply(
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

    def _list_statuses(self, req: Request, params: dict[str, str]) -> Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        sha = self._resolve(repo, params["ref"])
        if sha is None:
            return self._error(404, f"No commit found for SHA: {params['ref']}")
        newest_first = list(reversed(repo.statuses.get(sha, [])))
        page = paginate(req, newest_first, default=30, maximum=100)
        api = self._api_base(req)
        headers = {"Link": link_header(page.links)} if page.last > 1 else {}
        return Reply(200, [self._status_json(api, repo, s) for s in page.items], headers)

    def _combined_status(self, req: Request, params: dict[str, str]) -> Reply:
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
        return Reply(
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

    def _create_status(self, req: Request, params: dict[str, str]) -> Reply:
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
        return Reply(201, rendered, {"Location": rendered["url"]})

    # comments

    def _comment_json(self, api: str, repo: _GitHubRepo, comment: _GitHubComment) -> dict[str, Any]:
        url = f"{api}/repos/{repo.full_name}"
        web = f"{api.removesuffix('/api/v3')}/{repo.full_name}"
        return {
            "id": comment.id,
            "node_id": f"IC_standin{comment.id}",
            "url": f"{url}/issues/comments/{comment.id}",
            "html_url": f"{web}/pull/{comment.number}#issuecomment-{comment.id}",
            "issue_url": f"{url}/issues/{comment.number}",
            "body": comment.body,
            "user": {**self._user_json(api), "login": comment.login},
            "created_at": iso_time(comment.created_at),
            "updated_at": iso_time(comment.updated_at),
            "author_association": "NONE",
        }

    def _comment_body(self, req: Request) -> str | Reply:
        """The request's `body`, or the error GitHub answers for it."""
        if req.malformed or not isinstance(req.body, dict):
            return self._error(400, "Problems parsing JSON")
        body = req.body.get("body")
        if not isinstance(body, str) or not body:
            return self._error(
                422,
                "Validation Failed",
                errors=[{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
                documentation_url=_COMMENT_DOCS,
            )
        if len(body) > self.MAX_COMMENT:
            return self._error(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "IssueComment",
                        "code": "unprocessable",
                        "field": "data",
                        "message": f"Body is too long (maximum is {self.MAX_COMMENT} characters)",
                    }
                ],
                documentation_url=_COMMENT_DOCS,
            )
        return body

    def _list_comments(self, req: Request, params: dict[str, str]) -> Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        found = repo.comments.get(int(params["number"]), [])
        page = paginate(req, found, default=30, maximum=100)
        api = self._api_base(req)
        headers = {"Link": link_header(page.links)} if page.last > 1 else {}
        return Reply(200, [self._comment_json(api, repo, c) for c in page.items], headers)

    def _create_comment(self, req: Request, params: dict[str, str]) -> Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        body = self._comment_body(req)
        if isinstance(body, Reply):
            return body
        number, now = int(params["number"]), time.time()
        comment = _GitHubComment(self._next_id(), number, body, self.login, now, now)
        repo.comments.setdefault(number, []).append(comment)
        rendered = self._comment_json(self._api_base(req), repo, comment)
        return Reply(201, rendered, {"Location": rendered["url"]})

    def _edit_comment(self, req: Request, params: dict[str, str]) -> Reply:
        repo = self._lookup(params)
        wanted = int(params["id"])
        comment = next(
            (c for cs in (repo.comments.values() if repo else []) for c in cs if c.id == wanted),
            None,
        )
        if repo is None or comment is None:
            return self._error(404, "Not Found")
        if comment.login != self.login:
            return self._error(403, "Resource not accessible by personal access token")
        body = self._comment_body(req)
        if isinstance(body, Reply):
            return body
        comment.body, comment.updated_at = body, time.time()
        return Reply(200, self._comment_json(self._api_base(req), repo, comment))

    # deployments

    def _deployment_json(
        self, api: str, repo: _GitHubRepo, deployment: _GitHubDeployment
    ) -> dict[str, Any]:
        url = f"{api}/repos/{repo.full_name}/deployments/{deployment.id}"
        return {
            "url": url,
            "id": deployment.id,
            "node_id": f"DE_standin{deployment.id}",
            "sha": deployment.sha,
            "ref": deployment.ref,
            "task": "deploy",
            "payload": {},
            "original_environment": deployment.environment,
            "environment": deployment.environment,
            "description": deployment.description,
            "creator": self._user_json(api),
            "created_at": iso_time(deployment.created_at),
            "updated_at": iso_time(deployment.created_at),
            "statuses_url": f"{url}/statuses",
            "repository_url": f"{api}/repos/{repo.full_name}",
            "transient_environment": False,
            "production_environment": False,
        }

    def _list_deployments(self, req: Request, params: dict[str, str]) -> Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        found = [
            d
            for d in reversed(repo.deployments)
            if all(
                req.query.get(key) in (None, value)
                for key, value in (("sha", d.sha), ("ref", d.ref), ("environment", d.environment))
            )
        ]
        page = paginate(req, found, default=30, maximum=100)
        api = self._api_base(req)
        headers = {"Link": link_header(page.links)} if page.last > 1 else {}
        return Reply(200, [self._deployment_json(api, repo, d) for d in page.items], headers)

    def _create_deployment(self, req: Request, params: dict[str, str]) -> Reply:
        repo = self._lookup(params)
        if repo is None:
            return self._error(404, "Not Found")
        if req.malformed or not isinstance(req.body, dict):
            return self._error(400, "Problems parsing JSON")
        ref = req.body.get("ref")
        if not isinstance(ref, str) or not ref:
            return self._validation_failed(
                {"resource": "Deployment", "code": "missing_field", "field": "ref"}
            )
        sha = self._resolve(repo, ref)
        if sha is None:
            return self._error(422, f"No ref found for: {ref}")
        if req.body.get("required_contexts") != []:
            # Without an empty list GitHub checks the commit's statuses first; hooksync
            # records applies that already happened, so it must always send one.
            return self._error(409, "Conflict: Commit status checks failed for " + ref)
        environment = req.body.get("environment", "production")
        if not isinstance(environment, str) or not environment:
            return self._validation_failed(
                _github_invalid("environment", "environment is not a string")
            )
        deployment = _GitHubDeployment(
            self._next_id(), sha, ref, environment, req.body.get("description"), time.time()
        )
        repo.deployments.append(deployment)
        rendered = self._deployment_json(self._api_base(req), repo, deployment)
        return Reply(201, rendered, {"Location": rendered["url"]})

    def _deployment(self, params: dict[str, str]) -> tuple[_GitHubRepo, _GitHubDeployment] | None:
        repo = self._lookup(params)
        wanted = int(params["id"])
        found = next((d for d in (repo.deployments if repo else []) if d.id == wanted), None)
        return None if repo is None or found is None else (repo, found)

    def _list_deployment_statuses(self, req: Request, params: dict[str, str]) -> Reply:
        found = self._deployment(params)
        if found is None:
            return self._error(404, "Not Found")
        page = paginate(req, list(reversed(found[1].statuses)), default=30, maximum=100)
        headers = {"Link": link_header(page.links)} if page.last > 1 else {}
        return Reply(200, page.items, headers)

    def _create_deployment_status(self, req: Request, params: dict[str, str]) -> Reply:
        found = self._deployment(params)
        if found is None:
            return self._error(404, "Not Found")
        repo, deployment = found
        if req.malformed or not isinstance(req.body, dict):
            return self._error(400, "Problems parsing JSON")
        body = req.body
        state = body.get("state")
        if state not in _DEPLOYMENT_STATES:
            return self._error(
                422,
                "Validation Failed",
                errors=[_github_invalid("state", "state is not included in the list")],
                documentation_url=_DEPLOYMENT_STATUS_DOCS,
            )
        description = body.get("description") or ""
        if not isinstance(description, str) or len(description) > self.MAX_DESCRIPTION:
            limit = self.MAX_DESCRIPTION
            return self._error(
                422,
                "Validation Failed",
                errors=[
                    _github_invalid(
                        "description", f"description is too long (maximum is {limit} characters)"
                    )
                ],
                documentation_url=_DEPLOYMENT_STATUS_DOCS,
            )
        if "environment" in body:
            deployment.environment = str(body["environment"])
        api = self._api_base(req)
        url = f"{api}/repos/{repo.full_name}/deployments/{deployment.id}"
        status_id = self._next_id()
        # log_url sets target_url too, as GitHub documents.
        log_url = body.get("log_url") or body.get("target_url") or ""
        now = iso_time(time.time())
        rendered = {
            "url": f"{url}/statuses/{status_id}",
            "id": status_id,
            "node_id": f"DES_standin{status_id}",
            "state": state,
            "creator": self._user_json(api),
            "description": description,
            "environment": deployment.environment,
            "target_url": log_url,
            "log_url": log_url,
            "environment_url": body.get("environment_url") or "",
            "created_at": now,
            "updated_at": now,
            "deployment_url": url,
            "repository_url": f"{api}/repos/{repo.full_name}",
        }
        deployment.statuses.append(rendered)
        return Reply(201, rendered, {"Location": rendered["url"]})


def _github_invalid(field_name: str, message: str) -> dict[str, str]:
    return {"resource": "Status", "code": "custom", "field": field_name, "message": message}
