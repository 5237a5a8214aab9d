"""One Job's statuses take at most its share of a reporting pass.

GitHub asks for a second between content-creating requests, and PyGithub keeps to it, so a
Job carrying hundreds of SHAs would hold a pass for minutes. Posted here through the real
PyGithub client to the local GitHub stand-in; no cluster is involved in posting.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes.client import ApiClient

from hooksync.config import parse_config
from receiver.reporting import loop as reporting
from receiver.reporting.leader import LeaderElector
from receiver.reporting.loop import Reporter
from receiver.reporting.statuses import StatusReport
from receiver.secrets import ReceiverSecrets
from receiver.state import ReceiverState
from world.githosts import STANDIN_TOKEN, GitHubStandIn

TOKEN = STANDIN_TOKEN
REPO = "acme/shop"


def pass_poster(
    host: GitHubStandIn, monkeypatch: pytest.MonkeyPatch, budget_seconds: float
) -> Callable[[list[StatusReport]], list[str]]:
    """Posts one pass of a Job's statuses, with `budget_seconds` for the Job (and the pass's
    own host time well above it); returns the SHAs posted."""
    monkeypatch.setattr(reporting, "JOB_BUDGET_SECONDS", budget_seconds)
    monkeypatch.setattr(reporting, "PASS_HOST_SECONDS", 120.0)
    reporter = reporter_for(host)
    target = reporter.state.config.targets[0]

    def one_pass(reports: list[StatusReport]) -> list[str]:
        reporter._host_until = None  # as pass_once starts
        return reporter._post_all(target, "job-a", reports)

    return one_pass


def reporter_for(host: GitHubStandIn) -> Reporter:
    config = parse_config(
        f"jobImage: img\npublicURL: http://127.0.0.1\ngithub: {{apiURL: '{host.api_url}'}}\n"
        f"targets:\n- {{name: shop, provider: github, repo: {REPO}, branch: main,"
        " namespace: shop, serviceAccount: sa}\n"
    )
    api = ApiClient()  # never called: posting statuses needs only the Git host
    state = ReceiverState(config=config, secrets=ReceiverSecrets(github_token=TOKEN), api=api,
                          namespace="hooksync")  # fmt: skip
    return Reporter(state, LeaderElector(api, "hooksync", "test"))


def pending(count: int) -> list[StatusReport]:
    return [
        StatusReport(
            sha=f"{n:040x}",
            state="pending",
            context="hooksync/deploy: shop",
            description="deploying the branch head",
        )
        for n in range(1, count + 1)
    ]


def posted_once_each(host: GitHubStandIn, reports: list[StatusReport]) -> bool:
    return all(len(host.statuses(REPO, report.sha)) == 1 for report in reports)


def test_a_spent_budget_still_posts_one_status_a_pass(
    github_host: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    post = pass_poster(github_host, monkeypatch, budget_seconds=0.0)
    reports = pending(3)
    passes: list[list[str]] = []
    done: set[str] = set()
    for _ in range(2 * len(reports)):  # bounded: a pass that posts nothing fails the test
        if len(done) == len(reports):
            break
        todo = [report for report in reports if report.sha not in done]
        passes.append(post(todo))
        done.update(passes[-1])
    # Every pass makes progress, in order, and nothing is posted twice.
    assert passes == [[report.sha] for report in reports]
    assert posted_once_each(github_host, reports)


def test_a_long_list_is_cut_at_the_budget_and_finished_in_later_passes(
    github_host: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    post = pass_poster(github_host, monkeypatch, budget_seconds=1.5)
    reports = pending(5)
    first = post(reports)
    # At one write a second, 1.5 s holds two or three writes, never all five.
    assert 1 < len(first) < len(reports)
    assert first == [report.sha for report in reports[: len(first)]]
    rest = [report for report in reports if report.sha not in first]
    second = post(rest)
    assert second == [report.sha for report in rest]
    assert posted_once_each(github_host, reports)


def test_without_a_budget_cut_every_status_goes_out_in_one_pass(
    github_host: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    post = pass_poster(github_host, monkeypatch, budget_seconds=60.0)
    reports = pending(3)
    assert post(reports) == [report.sha for report in reports]
    assert posted_once_each(github_host, reports)


def test_a_pass_starts_host_writes_only_for_its_first_seconds(
    github_host: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pass's host time spent at once: the first Job's first status goes out, and neither its
    # second nor another Job's, so the pass goes on to Jobs that need no host write.
    monkeypatch.setattr(reporting, "PASS_HOST_SECONDS", 0.0)
    reporter = reporter_for(github_host)
    target = reporter.state.config.targets[0]
    first, second = pending(2), pending(3)[2:]
    reporter._host_until = None  # as pass_once starts
    assert reporter._post_all(target, "job-a", first) == [first[0].sha]
    assert reporter._post_all(target, "job-b", second) == []
    # The next pass goes on where this one stopped.
    reporter._host_until = None
    assert reporter._post_all(target, "job-a", first[1:]) == [first[1].sha]
    reporter._host_until = None
    assert reporter._post_all(target, "job-b", second) == [second[0].sha]
    assert posted_once_each(github_host, first + second)
