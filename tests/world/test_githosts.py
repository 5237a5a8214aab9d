"""The Git host stand-ins, driven only through the real PyGithub and python-gitlab clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import github
import gitlab
import pytest
import requests
from github.CommitStatus import CommitStatus
from github.GithubRetry import GithubRetry
from github.PaginatedList import PaginatedList

from world.githosts import STANDIN_TOKEN, GitHubStandIn, GitLabStandIn

TOKEN = STANDIN_TOKEN
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "89abcdef0123456789abcdef0123456789abcdef"
CONTEXT = "hooksync/shop"
RUN_URL = "https://hooksync.example.com/runs/shop-apply-1"


def github_client(
    host: GitHubStandIn,
    token: str = TOKEN,
    *,
    base_url: str | None = None,
    retry: GithubRetry | None = None,
    per_page: int = 30,
) -> github.Github:
    # No retry by default so injected faults reach the test; no write pacing so tests stay fast.
    return github.Github(
        base_url=base_url or host.api_url,
        auth=github.Auth.Token(token),
        retry=retry,
        per_page=per_page,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def gitlab_client(host: GitLabStandIn, token: str = TOKEN, *, per_page: int = 20) -> gitlab.Gitlab:
    return gitlab.Gitlab(
        url=host.url, private_token=token, per_page=per_page, retry_transient_errors=False
    )


@pytest.fixture
def gh(github_host: GitHubStandIn) -> Iterator[github.Github]:
    client = github_client(github_host)
    yield client
    client.close()


@pytest.fixture
def gl(gitlab_host: GitLabStandIn) -> gitlab.Gitlab:
    return gitlab_client(gitlab_host)


# --------------------------------------------------------------------------- GitHub


def test_github_creates_and_lists_statuses_newest_first(
    github_host: GitHubStandIn, gh: github.Github
) -> None:
    commit = gh.get_repo("acme/shop").get_commit(SHA)
    created = commit.create_status("pending", RUN_URL, "Deploying", CONTEXT)
    commit.create_status("success", RUN_URL, "Deployed", CONTEXT)

    assert created.state == "pending"
    assert created.context == CONTEXT
    assert created.target_url == RUN_URL
    assert created.creator.login == "hooksync-bot"
    assert [s.state for s in commit.get_statuses()] == ["success", "pending"]
    assert [s["description"] for s in github_host.statuses("acme/shop", SHA)] == [
        "Deploying",
        "Deployed",
    ]
    post = next(call for call in github_host.calls if call.method == "POST")
    assert post.path == f"/repos/acme/shop/statuses/{SHA}"
    assert post.body == {
        "state": "pending",
        "target_url": RUN_URL,
        "description": "Deploying",
        "context": CONTEXT,
    }
    assert post.status == 201


def test_github_repository_lookup_ignores_case(gh: github.Github) -> None:
    repo = gh.get_repo("ACME/Shop")

    assert repo.full_name == "acme/shop"
    assert repo.owner.login == "acme"
    assert repo.default_branch == "main"
    assert repo.private is True


def test_github_lists_page_by_page_with_link_headers(github_host: GitHubStandIn) -> None:
    github_host.preload_statuses("acme/shop", SHA, 23, context=CONTEXT, state="pending")
    client = github_client(github_host, per_page=10)
    commit = client.get_repo("acme/shop").get_commit(SHA)
    commit.create_status("success", description="newest", context=CONTEXT)
    github_host.clear_calls()

    listed = list(commit.get_statuses())

    assert len(listed) == 24
    assert listed[0].description == "newest"
    assert [call.query.get("page", "1") for call in github_host.calls] == ["1", "2", "3"]
    assert commit.get_statuses().totalCount == 24


def test_github_lists_by_branch_through_commits_route(
    github_host: GitHubStandIn, gh: github.Github
) -> None:
    github_host.set_branch("acme/shop", "main", SHA)
    repo = gh.get_repo("acme/shop")
    repo.get_commit(SHA).create_status("failure", context=CONTEXT)

    by_branch = PaginatedList(CommitStatus, gh.requester, f"{repo.url}/commits/main/statuses", None)

    assert [s.state for s in by_branch] == ["failure"]
    assert github_host.calls[-1].path == "/repos/acme/shop/commits/main/statuses"


def test_github_combined_status_takes_latest_per_context(
    github_host: GitHubStandIn, gh: github.Github
) -> None:
    github_host.set_branch("acme/shop", "main", SHA)
    commit = gh.get_repo("acme/shop").get_commit("main")
    commit.create_status("pending", context="hooksync/shop")
    commit.create_status("success", context="hooksync/preview")
    pending = commit.get_combined_status()

    commit.create_status("success", context="hooksync/shop")
    success = commit.get_combined_status()
    commit.create_status("error", context="hooksync/preview")
    failure = commit.get_combined_status()

    assert commit.sha == SHA
    assert (pending.state, pending.total_count) == ("pending", 2)
    assert success.state == "success"
    assert {s.context: s.state for s in success.statuses} == {
        "hooksync/shop": "success",
        "hooksync/preview": "success",
    }
    assert failure.state == "failure"


def test_github_rejects_description_over_140_characters(
    github_host: GitHubStandIn, gh: github.Github
) -> None:
    commit = gh.get_repo("acme/shop").get_commit(SHA)
    commit.create_status("pending", description="x" * 140, context=CONTEXT)

    with pytest.raises(github.GithubException) as caught:
        commit.create_status("pending", description="x" * 141, context=CONTEXT)

    assert caught.value.status == 422
    assert caught.value.data["message"] == "Validation Failed"
    assert caught.value.data["errors"][0]["field"] == "description"
    assert "documentation_url" in caught.value.data
    assert len(github_host.statuses("acme/shop", SHA)) == 1


def test_github_rejects_unknown_state(gh: github.Github) -> None:
    commit = gh.get_repo("acme/shop").get_commit(SHA)

    with pytest.raises(github.GithubException) as caught:
        commit.create_status("running", context=CONTEXT)

    assert caught.value.status == 422
    assert caught.value.data["errors"][0]["field"] == "state"


def test_github_refuses_the_1001st_status_for_one_sha_and_context(
    github_host: GitHubStandIn, gh: github.Github
) -> None:
    github_host.preload_statuses("acme/shop", SHA, 1000, context=CONTEXT)
    commit = gh.get_repo("acme/shop").get_commit(SHA)

    with pytest.raises(github.GithubException) as caught:
        commit.create_status("success", context=CONTEXT)
    other_context = commit.create_status("success", context="hooksync/other")

    assert caught.value.status == 422
    assert "maximum number of statuses" in caught.value.data["errors"][0]["message"]
    assert other_context.state == "success"
    assert len(github_host.statuses("acme/shop", SHA)) == 1001


def test_github_unknown_repository_is_not_found(gh: github.Github) -> None:
    with pytest.raises(github.UnknownObjectException) as caught:
        gh.get_repo("acme/missing")

    assert caught.value.status == 404


def test_github_unknown_commit_is_unprocessable(gh: github.Github) -> None:
    with pytest.raises(github.GithubException) as caught:
        gh.get_repo("acme/shop").get_commit("no-such-branch")

    assert caught.value.status == 422
    assert caught.value.data["message"] == "No commit found for SHA: no-such-branch"


def test_github_bad_token_is_bad_credentials(github_host: GitHubStandIn) -> None:
    client = github_client(github_host, token="wrong")

    with pytest.raises(github.BadCredentialsException) as caught:
        client.get_repo("acme/shop")

    assert caught.value.status == 401
    assert github_host.calls[-1].status == 401


def test_github_enterprise_prefix_serves_the_same_api(github_host: GitHubStandIn) -> None:
    client = github_client(github_host, base_url=github_host.enterprise_api_url)

    repo = client.get_repo("acme/shop")
    repo.get_commit(SHA).create_status("success", context=CONTEXT)

    assert repo.url == f"{github_host.enterprise_api_url}/repos/acme/shop"
    assert all(call.path.startswith("/api/v3/") for call in github_host.calls)
    assert github_host.statuses("acme/shop", SHA)[0]["state"] == "success"


def test_github_injected_429_fails_only_the_write_then_recovers(
    github_host: GitHubStandIn, gh: github.Github
) -> None:
    github_host.fail_next(1, status=429, retry_after=2)
    commit = gh.get_repo("acme/shop").get_commit(SHA)

    with pytest.raises(github.GithubException) as caught:
        commit.create_status("pending", context=CONTEXT)
    commit.create_status("pending", context=CONTEXT)

    assert caught.value.status == 429
    assert (caught.value.headers or {})["retry-after"] == "2"
    assert [call.status for call in github_host.calls] == [200, 200, 429, 201]


def test_github_injected_500_surfaces_then_recovers(
    github_host: GitHubStandIn, gh: github.Github
) -> None:
    github_host.fail_next(2, status=500)
    commit = gh.get_repo("acme/shop").get_commit(SHA)

    statuses_seen = []
    for _ in range(2):
        with pytest.raises(github.GithubException) as caught:
            commit.create_status("pending", context=CONTEXT)
        statuses_seen.append(caught.value.status)
    commit.create_status("pending", context=CONTEXT)

    assert statuses_seen == [500, 500]
    assert len(github_host.statuses("acme/shop", SHA)) == 1


def test_github_fault_on_all_calls_hits_reads(
    github_host: GitHubStandIn, gh: github.Github
) -> None:
    github_host.fail_next(1, status=502, all_calls=True)

    with pytest.raises(github.GithubException) as caught:
        gh.get_repo("acme/shop")

    assert caught.value.status == 502
    assert gh.get_repo("acme/shop").name == "shop"


def test_github_secondary_rate_limit_is_recognised_and_retried(
    github_host: GitHubStandIn,
) -> None:
    no_retry = github_client(github_host)
    commit = no_retry.get_repo("acme/shop").get_commit(SHA)
    github_host.fail_next(1, status=403, retry_after=0)

    with pytest.raises(github.RateLimitExceededException) as caught:
        commit.create_status("pending", context=CONTEXT)

    assert caught.value.status == 403
    assert (caught.value.headers or {})["retry-after"] == "0"

    # PyGithub's own retry honours Retry-After and gets through on the second attempt.
    retrying = github_client(github_host, retry=GithubRetry(total=2))
    github_host.fail_next(1, status=403, retry_after=0)
    github_host.clear_calls()

    retrying.get_repo("acme/shop").get_commit(SHA).create_status("pending", context="ctx/2")

    assert [c.status for c in github_host.calls if c.method == "POST"] == [403, 201]


def test_github_primary_rate_limit_blocks_until_reset(github_host: GitHubStandIn) -> None:
    client = github_client(github_host)
    repo = client.get_repo("acme/shop")
    github_host.set_rate_limit(1, reset_in=0.2)
    commit = repo.get_commit(SHA)

    with pytest.raises(github.RateLimitExceededException) as caught:
        commit.create_status("pending", context=CONTEXT)

    assert caught.value.status == 403
    assert (caught.value.headers or {})["x-ratelimit-remaining"] == "0"
    assert int((caught.value.headers or {})["x-ratelimit-reset"]) >= int(time.time())
    assert client.rate_limiting[0] == 0

    time.sleep(0.3)
    commit.create_status("pending", context=CONTEXT)
    assert client.rate_limiting[0] > 0


def test_github_primary_rate_limit_can_answer_429(github_host: GitHubStandIn) -> None:
    client = github_client(github_host)
    github_host.set_rate_limit(0, status=429)

    with pytest.raises(github.GithubException) as caught:
        client.get_repo("acme/shop")

    assert caught.value.status == 429
    assert caught.value.data["message"].startswith("API rate limit exceeded")


def test_github_down_answers_503_until_back(github_host: GitHubStandIn, gh: github.Github) -> None:
    github_host.set_down(True)
    with pytest.raises(github.GithubException) as caught:
        gh.get_repo("acme/shop")
    github_host.set_down(False)

    assert caught.value.status == 503
    assert gh.get_repo("acme/shop").full_name == "acme/shop"


def test_github_concurrent_writes_are_all_recorded(
    github_host: GitHubStandIn, gh: github.Github
) -> None:
    commit = gh.get_repo("acme/shop").get_commit(SHA)
    github_host.clear_calls()

    def post(n: int) -> None:
        client = github_client(github_host)
        client.get_repo("acme/shop").get_commit(SHA).create_status("pending", context=f"ctx/{n}")
        client.close()

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert commit.get_combined_status().total_count == 8
    assert sum(call.method == "POST" for call in github_host.calls) == 8


# --------------------------------------------------------------------------- GitLab


def test_gitlab_status_moves_through_states_in_place(
    gitlab_host: GitLabStandIn, gl: gitlab.Gitlab
) -> None:
    commit = gl.projects.get("acme/platform/shop").commits.get(SHA)

    pending = commit.statuses.create(
        {"state": "pending", "name": CONTEXT, "target_url": RUN_URL, "description": "Queued"}
    )
    running = commit.statuses.create({"state": "running", "name": CONTEXT})
    done = commit.statuses.create({"state": "success", "name": CONTEXT, "description": "Done"})

    assert pending.id == running.id == done.id
    assert (done.status, done.description, done.target_url) == ("success", "Done", RUN_URL)
    assert done.ref == "main"
    assert done.started_at is not None and done.finished_at is not None
    assert [s["status"] for s in gitlab_host.statuses("acme/platform/shop", SHA)] == ["success"]


def test_gitlab_new_status_after_a_final_one(gitlab_host: GitLabStandIn, gl: gitlab.Gitlab) -> None:
    commit = gl.projects.get("acme/platform/shop").commits.get(SHA)
    first = commit.statuses.create({"state": "success", "name": CONTEXT})

    again = commit.statuses.create({"state": "pending", "name": CONTEXT})

    assert again.id != first.id
    assert [s.status for s in commit.statuses.list(get_all=True)] == ["pending"]
    assert [s.status for s in commit.statuses.list(get_all=True, all=True)] == [
        "success",
        "pending",
    ]


def test_gitlab_repeated_pending_cannot_transition(
    gitlab_host: GitLabStandIn, gl: gitlab.Gitlab
) -> None:
    commit = gl.projects.get("acme/platform/shop").commits.get(SHA)
    commit.statuses.create({"state": "pending", "name": CONTEXT})

    with pytest.raises(gitlab.exceptions.GitlabCreateError) as caught:
        commit.statuses.create({"state": "pending", "name": CONTEXT})

    assert caught.value.response_code == 400
    assert "Cannot transition status via :enqueue from :pending" in caught.value.error_message
    assert gitlab_host.calls[-1].status == 400


def test_gitlab_repeated_running_cannot_transition(gl: gitlab.Gitlab) -> None:
    commit = gl.projects.get("acme/platform/shop").commits.get(SHA)
    commit.statuses.create({"state": "running", "name": CONTEXT})

    with pytest.raises(gitlab.exceptions.GitlabCreateError) as caught:
        commit.statuses.create({"state": "running", "name": CONTEXT})
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as back:
        commit.statuses.create({"state": "pending", "name": CONTEXT})

    assert caught.value.response_code == 400
    assert "Cannot transition status via :run from :running" in caught.value.error_message
    assert "via :enqueue from :running" in back.value.error_message


def test_gitlab_same_name_on_another_ref_is_a_separate_status(gl: gitlab.Gitlab) -> None:
    commit = gl.projects.get("acme/platform/shop").commits.get(SHA)
    commit.statuses.create({"state": "pending", "name": CONTEXT, "ref": "main"})

    other = commit.statuses.create({"state": "pending", "name": CONTEXT, "ref": "feature"})

    assert other.ref == "feature"
    assert len(commit.statuses.list(get_all=True)) == 2


def test_gitlab_rejects_long_description_and_unknown_state(
    gitlab_host: GitLabStandIn, gl: gitlab.Gitlab
) -> None:
    commit = gl.projects.get("acme/platform/shop").commits.get(SHA)
    commit.statuses.create({"state": "success", "name": "ok", "description": "x" * 255})

    with pytest.raises(gitlab.exceptions.GitlabCreateError) as too_long:
        commit.statuses.create({"state": "success", "name": CONTEXT, "description": "x" * 256})
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as bad_state:
        commit.statuses.create({"state": "error", "name": CONTEXT})

    assert too_long.value.response_code == 400
    assert "too long" in too_long.value.error_message
    assert bad_state.value.response_code == 400
    assert [s["name"] for s in gitlab_host.statuses("acme/platform/shop", SHA)] == ["ok"]


def test_gitlab_project_by_id_or_path(gitlab_host: GitLabStandIn, gl: gitlab.Gitlab) -> None:
    by_path = gl.projects.get("Acme/Platform/Shop")
    by_id = gl.projects.get(by_path.id)
    lazy = gl.projects.get("acme/platform/shop", lazy=True)

    lazy.commits.get(SHA, lazy=True).statuses.create({"state": "success", "name": CONTEXT})

    assert by_id.path_with_namespace == "acme/platform/shop"
    assert by_id.default_branch == "main"
    assert by_id.web_url == f"{gitlab_host.url}/acme/platform/shop"
    assert gitlab_host.calls[-1].path == f"/api/v4/projects/acme%2Fplatform%2Fshop/statuses/{SHA}"
    assert gitlab_host.calls[-1].status == 201


def test_gitlab_unknown_project_and_commit_are_not_found(gl: gitlab.Gitlab) -> None:
    with pytest.raises(gitlab.exceptions.GitlabGetError) as project:
        gl.projects.get("acme/missing")
    with pytest.raises(gitlab.exceptions.GitlabGetError) as commit:
        gl.projects.get("acme/platform/shop").commits.get("no-such-ref")

    assert project.value.response_code == 404
    assert project.value.error_message == "404 Project Not Found"
    assert commit.value.error_message == "404 Commit Not Found"


def test_gitlab_list_follows_pagination(gitlab_host: GitLabStandIn) -> None:
    client = gitlab_client(gitlab_host, per_page=10)
    commit = client.projects.get("acme/platform/shop").commits.get(SHA)
    for n in range(23):
        commit.statuses.create({"state": "success", "name": f"check-{n}"})
    gitlab_host.clear_calls()

    listed = commit.statuses.list(get_all=True)
    first_page = commit.statuses.list(iterator=True)

    assert [s.name for s in listed] == [f"check-{n}" for n in range(23)]
    assert len([c for c in gitlab_host.calls if c.method == "GET"]) == 4
    assert (first_page.total, first_page.total_pages, first_page.next_page) == (23, 3, 2)


def test_gitlab_bad_token_is_an_authentication_error(gitlab_host: GitLabStandIn) -> None:
    client = gitlab_client(gitlab_host, token="wrong")

    with pytest.raises(gitlab.exceptions.GitlabAuthenticationError) as caught:
        client.projects.get("acme/platform/shop")
    with pytest.raises(gitlab.exceptions.GitlabAuthenticationError):
        client.auth()

    assert caught.value.response_code == 401
    assert caught.value.error_message == "401 Unauthorized"


def test_gitlab_accepts_oauth_bearer_token(gitlab_host: GitLabStandIn) -> None:
    client = gitlab.Gitlab(url=gitlab_host.url, oauth_token=TOKEN)

    client.auth()

    assert client.user is not None
    assert client.user.username == "hooksync-bot"


def test_gitlab_injected_429_surfaces_without_rate_limit_obedience(
    gitlab_host: GitLabStandIn, gl: gitlab.Gitlab
) -> None:
    commit = gl.projects.get("acme/platform/shop").commits.get(SHA)
    gitlab_host.fail_next(1, status=429, retry_after=2)

    with pytest.raises(gitlab.exceptions.GitlabCreateError) as caught:
        commit.statuses.create({"state": "pending", "name": CONTEXT}, obey_rate_limit=False)
    created = commit.statuses.create({"state": "pending", "name": CONTEXT})

    assert caught.value.response_code == 429
    assert created.status == "pending"


def test_gitlab_client_obeys_retry_after_on_429(
    gitlab_host: GitLabStandIn, gl: gitlab.Gitlab
) -> None:
    commit = gl.projects.get("acme/platform/shop").commits.get(SHA)
    gitlab_host.fail_next(1, status=429, retry_after=0)

    created = commit.statuses.create({"state": "pending", "name": CONTEXT})

    assert created.status == "pending"
    assert [c.status for c in gitlab_host.calls if c.method == "POST"] == [429, 201]


def test_gitlab_injected_500_surfaces_then_recovers(
    gitlab_host: GitLabStandIn, gl: gitlab.Gitlab
) -> None:
    commit = gl.projects.get("acme/platform/shop").commits.get(SHA)
    gitlab_host.fail_next(1, status=500)

    with pytest.raises(gitlab.exceptions.GitlabCreateError) as caught:
        commit.statuses.create({"state": "pending", "name": CONTEXT})
    created = commit.statuses.create({"state": "pending", "name": CONTEXT})

    assert caught.value.response_code == 500
    assert created.status == "pending"


def test_gitlab_down_answers_503_and_stop_refuses_connections(
    gitlab_host: GitLabStandIn, gl: gitlab.Gitlab
) -> None:
    gitlab_host.set_down(True)
    with pytest.raises(gitlab.exceptions.GitlabGetError) as down:
        gl.projects.get("acme/platform/shop")
    gitlab_host.set_down(False)
    gl.projects.get("acme/platform/shop")

    gitlab_host.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        gl.projects.get("acme/platform/shop")
    gitlab_host.start()

    assert down.value.response_code == 503
    assert gl.projects.get("acme/platform/shop").path_with_namespace == "acme/platform/shop"


def test_gitlab_statuses_on_other_commits_stay_separate(
    gitlab_host: GitLabStandIn, gl: gitlab.Gitlab
) -> None:
    project = gl.projects.get("acme/platform/shop")
    project.commits.get(SHA).statuses.create({"state": "pending", "name": CONTEXT})
    project.commits.get(OTHER_SHA).statuses.create({"state": "pending", "name": CONTEXT})

    assert len(gitlab_host.statuses("acme/platform/shop", SHA)) == 1
    assert len(gitlab_host.statuses(project.id, OTHER_SHA)) == 1
