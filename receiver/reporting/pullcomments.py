"""Keeping one preview comment per target on a pull or merge request: GitHub issue comments
(PyGithub), GitLab merge request notes (python-gitlab), Gitea issue comments (its API, through
PyGithub's requester as for statuses).

`upsert` lists the request's comments (every page), edits the one this bot wrote with the
target's marker, or creates it when there is none, so a request never gets a second one.
Errors are those of githosts: HostUnavailable (try later) or HostRejected (give up).
"""

from __future__ import annotations

from typing import Any, Literal

import github
import gitlab
import requests

from hooksync.config import Config
from receiver.reporting.comments import is_marked
from receiver.reporting.githosts import (
    GitHubStatuses,
    GitLabStatuses,
    HostUnavailable,
    github_error,
    gitlab_error,
)

Outcome = Literal["created", "edited", "unchanged"]
PER_PAGE = 100


class GitHubComments(GitHubStatuses):
    """Issue comments on a pull request (a pull request is an issue to this API)."""

    def __init__(self, config: Config, token: str | None, api_url: str | None = None) -> None:
        super().__init__(config, token, api_url)
        # Lazy objects: naming a repository or an issue costs no request.
        self.client = self.client.withLazy(True)
        self._login: str | None = None

    def upsert(self, repo: str, number: int, target: str, body: str) -> Outcome:
        try:
            login = self._me()
            issue = self.client.get_repo(repo).get_issue(number)
            for comment in issue.get_comments():
                if comment.user.login == login and is_marked(comment.body or "", target):
                    if comment.body == body:
                        return "unchanged"
                    comment.edit(body)
                    return "edited"
            issue.create_comment(body)
            return "created"
        except github.GithubException as exc:
            raise github_error(exc) from None
        except (requests.RequestException, OSError) as exc:
            raise HostUnavailable(f"GitHub unreachable: {type(exc).__name__}", 0) from None

    def _me(self) -> str:
        """The token's own login: only its comments are edited, never one that copies the
        marker."""
        if self._login is None:
            _, data = self.client.requester.requestJsonAndCheck("GET", "/user")
            self._login = str(data.get("login") or "")
        return self._login


class GiteaComments(GitHubComments):
    """Gitea lists an issue's comments in one answer (no pages) and its comments carry no
    `url`, so the calls name their paths."""

    def __init__(self, config: Config, token: str | None) -> None:
        super().__init__(config, token, api_url=config.gitea_api_url)

    def upsert(self, repo: str, number: int, target: str, body: str) -> Outcome:
        requester = self.client.requester
        try:
            login = self._me()
            _, found = requester.requestJsonAndCheck(
                "GET", f"/repos/{repo}/issues/{number}/comments"
            )
            for comment in found if isinstance(found, list) else []:
                author = (comment.get("user") or {}).get("login")
                text = str(comment.get("body") or "")
                if author == login and is_marked(text, target):
                    if text == body:
                        return "unchanged"
                    path = f"/repos/{repo}/issues/comments/{int(comment['id'])}"
                    requester.requestJsonAndCheck("PATCH", path, input={"body": body})
                    return "edited"
            path = f"/repos/{repo}/issues/{number}/comments"
            requester.requestJsonAndCheck("POST", path, input={"body": body})
            return "created"
        except github.GithubException as exc:
            raise github_error(exc) from None
        except (requests.RequestException, OSError) as exc:
            raise HostUnavailable(f"Gitea unreachable: {type(exc).__name__}", 0) from None


class GitLabComments(GitLabStatuses):
    """Notes on a merge request."""

    def __init__(self, config: Config, token: str | None) -> None:
        super().__init__(config, token)
        self._user_id: int | None = None

    def upsert(self, repo: str, number: int, target: str, body: str) -> Outcome:
        self._throttled_for = 0.0
        # obey_rate_limit=False on every call: a 429 comes back to the reporter, which paces.
        quick: dict[str, Any] = {"obey_rate_limit": False}
        try:
            me = self._me()
            project = self.client.projects.get(repo, lazy=True)
            request = project.mergerequests.get(number, lazy=True)
            notes = request.notes.list(iterator=True, per_page=PER_PAGE, **quick)
            for note in notes:
                if note.attributes.get("system"):
                    continue
                author = (note.attributes.get("author") or {}).get("id")
                text = str(note.attributes.get("body") or "")
                if author == me and is_marked(text, target):
                    if text == body:
                        return "unchanged"
                    request.notes.update(note.id, {"body": body}, **quick)
                    return "edited"
            request.notes.create({"body": body}, **quick)
            return "created"
        except gitlab.exceptions.GitlabError as exc:
            raise gitlab_error(exc, self._throttled_for) from None
        except (requests.RequestException, OSError) as exc:
            raise HostUnavailable(f"GitLab unreachable: {type(exc).__name__}", 0) from None

    def _me(self) -> int:
        if self._user_id is None:
            self.client.auth()
            user = self.client.user
            self._user_id = int(user.id) if user is not None else 0
        return self._user_id
