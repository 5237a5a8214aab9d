"""Which commit statuses a Job's state calls for, and how descriptions fit the hosts' limits."""

from __future__ import annotations

from typing import Any

import pytest

from hooksync import names
from hooksync.config import Config, Target
from hooksync.summary import RunSummary
from receiver.dispatch.coalescing import (
    MAX_RECORDED,
    Create,
    CreateWaiting,
    FoldInto,
    decide_push,
    folded_annotations,
)
from receiver.dispatch.manifests import build_job, build_waiting_job
from receiver.jobview import failure_reason, job_shas
from receiver.reporting.statuses import (
    FAILURE,
    GITHUB_DESCRIPTION_LIMIT,
    GITLAB_DESCRIPTION_LIMIT,
    PENDING,
    SUCCESS,
    StatusReport,
    carried_shas,
    final_reports,
    owned_reports,
    pending_reports,
    reports_at_exit,
    shorten,
)

SHA_A = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
SHA_B = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA_C = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
SHA_D = "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"

DEPLOY = "hooksync/deploy: shop"
PREVIEW = "hooksync/preview: shop"


def job(
    sha: str | None = SHA_A,
    *,
    mode: str = "apply",
    coalesced: list[str] | None = None,
    reported_pending: list[str] | None = None,
    suspended: bool = False,
    waits_for: str | None = None,
    conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A hooksync Job as the API server lists it (the fields the status decision reads)."""
    annotations: dict[str, str] = {names.REF: "refs/heads/main"}
    if sha:
        annotations[names.SHA] = sha
    if coalesced:
        annotations[names.COALESCED_SHAS] = ",".join(coalesced)
    if reported_pending:
        annotations[names.REPORTED_PENDING] = ",".join(reported_pending)
    if waits_for:
        annotations[names.WAITS_FOR] = waits_for
    return {
        "metadata": {
            "name": f"hooksync-shop-{mode}-{(sha or 'resync')[:7]}",
            "labels": {names.TARGET: "shop", names.MODE: mode},
            "annotations": annotations,
        },
        "spec": {"suspend": suspended},
        "status": {"conditions": conditions or []},
    }


COMPLETE = [{"type": "Complete", "status": "True"}]


def failed(reason: str | None, message: str | None = None) -> list[dict[str, str]]:
    condition = {"type": "Failed", "status": "True"}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return [condition]


def summary(
    result: str = "success",
    sha: str | None = SHA_A,
    message: str = "applied 3, pruned 0, 0 drifted",
    mode: str = "apply",
    **counts: int,
) -> RunSummary:
    full = {"created": 0, "configured": 0, "unchanged": 0, "pruned": 0, "drifted": 0, **counts}
    return RunSummary(result=result, sha=sha, mode=mode, counts=full, message=message)


# -- pending ---------------------------------------------------------------------------------


def test_an_unfinished_apply_job_is_pending_on_every_sha_it_stands_for() -> None:
    reports = pending_reports(job(SHA_A, coalesced=[SHA_B, SHA_C]))
    assert reports == [
        StatusReport(SHA_A, PENDING, DEPLOY, "deploying the branch head"),
        StatusReport(SHA_B, PENDING, DEPLOY, "deploying the branch head"),
        StatusReport(SHA_C, PENDING, DEPLOY, "deploying the branch head"),
    ]


def test_pending_is_posted_once_per_sha() -> None:
    reports = pending_reports(job(SHA_A, coalesced=[SHA_B], reported_pending=[SHA_A]))
    assert [r.sha for r in reports] == [SHA_B]


def test_a_waiting_job_says_what_it_waits_behind() -> None:
    waiting = job(SHA_B, suspended=True, waits_for="hooksync-shop-apply-6113728")
    (report,) = pending_reports(waiting)
    assert report.description == "queued behind hooksync-shop-apply-6113728"


def test_a_preview_is_pending_under_its_own_context() -> None:
    (report,) = pending_reports(job(SHA_D, mode="preview"))
    assert report == StatusReport(SHA_D, PENDING, PREVIEW, "checking what this commit would change")


def test_finished_jobs_and_resyncs_are_never_pending() -> None:
    assert pending_reports(job(SHA_A, conditions=COMPLETE)) == []
    assert pending_reports(job(SHA_A, conditions=failed("BackoffLimitExceeded"))) == []
    assert pending_reports(job(None, mode="resync")) == []


# -- final: apply ----------------------------------------------------------------------------


def test_success_on_the_applied_sha_first_and_included_in_on_the_coalesced_ones() -> None:
    finished = job(SHA_A, coalesced=[SHA_B, SHA_C], conditions=COMPLETE)
    reports = final_reports(finished, summary(sha=SHA_C), None)
    assert reports == [
        StatusReport(SHA_C, SUCCESS, DEPLOY, "applied 3, pruned 0, 0 drifted"),
        StatusReport(SHA_A, SUCCESS, DEPLOY, f"included in {SHA_C[:7]}"),
        StatusReport(SHA_B, SUCCESS, DEPLOY, f"included in {SHA_C[:7]}"),
    ]


def test_a_head_that_moved_past_the_jobs_shas_gets_the_success_too() -> None:
    finished = job(SHA_A, coalesced=[SHA_B], conditions=COMPLETE)
    reports = final_reports(finished, summary(sha=SHA_D), None)
    assert reports == [
        StatusReport(SHA_D, SUCCESS, DEPLOY, "applied 3, pruned 0, 0 drifted"),
        StatusReport(SHA_A, SUCCESS, DEPLOY, f"included in {SHA_D[:7]}"),
        StatusReport(SHA_B, SUCCESS, DEPLOY, f"included in {SHA_D[:7]}"),
    ]


def test_at_the_pods_exit_only_the_jobs_own_commits_not_yet_posted() -> None:
    # The run deployed SHA_D, a head beyond its own commits: the Job waiting behind may have
    # taken it already, so its status waits for Complete and a fresh listing.
    finished = job(SHA_A, coalesced=[SHA_B, SHA_C], conditions=COMPLETE)
    finished["metadata"]["annotations"][names.REPORTED_FINAL] = SHA_B
    reports = final_reports(finished, summary(sha=SHA_D), None)
    assert [r.sha for r in reports] == [SHA_D, SHA_A, SHA_B, SHA_C]
    assert [r.sha for r in reports_at_exit(finished, reports)] == [SHA_A, SHA_C]


def test_a_no_op_run_is_a_success() -> None:
    message = "6113728 already applied; nothing drifted"
    reports = final_reports(job(SHA_A, conditions=COMPLETE), summary("no-op", SHA_A, message), None)
    assert reports == [StatusReport(SHA_A, SUCCESS, DEPLOY, message)]


def test_a_failure_with_a_summary_carries_its_message_on_every_sha() -> None:
    message = (
        "apply failed: deploy/rbac.yaml: ClusterRole/reader: ClusterRole is cluster-scoped, "
        "and hooksync converges only namespace 'shop'"
    )
    finished = job(SHA_A, coalesced=[SHA_B], conditions=failed("PodFailurePolicy"))
    reports = final_reports(finished, summary("failure", SHA_B, message), "PodFailurePolicy")
    assert reports == [
        StatusReport(SHA_A, FAILURE, DEPLOY, message),
        StatusReport(SHA_B, FAILURE, DEPLOY, message),
    ]


@pytest.mark.parametrize(
    ("reason", "message", "expected"),
    [
        (
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            "apply failed: DeadlineExceeded: Job was active longer than specified deadline",
        ),
        ("BackoffLimitExceeded", None, "apply failed: BackoffLimitExceeded"),
    ],
)
def test_a_failure_without_a_summary_names_the_jobs_failed_condition(
    reason: str, message: str | None, expected: str
) -> None:
    finished = job(SHA_A, coalesced=[SHA_B], conditions=failed(reason, message))
    reason_text = failure_reason(finished)
    assert reports_of(final_reports(finished, None, reason_text)) == [
        (SHA_A, FAILURE, expected),
        (SHA_B, FAILURE, expected),
    ]


def test_a_failed_job_is_a_failure_even_if_an_earlier_pod_wrote_a_success() -> None:
    finished = job(SHA_A, conditions=failed("DeadlineExceeded"))
    reports = final_reports(finished, summary(sha=SHA_A), failure_reason(finished))
    assert reports_of(reports) == [(SHA_A, FAILURE, "apply failed: DeadlineExceeded")]


def test_a_job_that_ended_without_summary_or_reason_still_fails_every_sha() -> None:
    reports = final_reports(job(SHA_A, coalesced=[SHA_B], conditions=COMPLETE), None, None)
    expected = "apply failed: the Job ended without a summary"
    assert reports_of(reports) == [(SHA_A, FAILURE, expected), (SHA_B, FAILURE, expected)]


def test_a_lease_that_stayed_held_is_a_failure() -> None:
    finished = job(SHA_A, conditions=failed("BackoffLimitExceeded"))
    held = summary("lease-held", None, "target shop is being converged by another Job")
    reports = final_reports(finished, held, failure_reason(finished))
    assert reports_of(reports) == [(SHA_A, FAILURE, "apply failed: BackoffLimitExceeded")]


# -- final: preview and resync ---------------------------------------------------------------


def test_a_preview_reports_its_plan_on_the_pull_request_head() -> None:
    plan = "would create 1, change 1, prune 1: ConfigMap/extra, ConfigMap/web, -v1/Service/web"
    finished = job(SHA_D, mode="preview", conditions=COMPLETE)
    reports = final_reports(finished, summary(sha=SHA_D, message=plan, mode="preview"), None)
    assert reports == [StatusReport(SHA_D, SUCCESS, PREVIEW, plan)]


def test_a_failed_preview_says_preview_failed() -> None:
    finished = job(SHA_D, mode="preview", conditions=failed("DeadlineExceeded"))
    reports = final_reports(finished, None, failure_reason(finished))
    assert reports == [
        StatusReport(SHA_D, FAILURE, PREVIEW, "preview failed: DeadlineExceeded"),
    ]


def test_a_resync_that_changed_nothing_posts_nothing() -> None:
    quiet = summary("no-op", SHA_A, "6113728 already applied; nothing drifted", unchanged=3)
    assert final_reports(job(None, mode="resync", conditions=COMPLETE), quiet, None) == []
    unchanged = summary("success", SHA_A, "applied 3, pruned 0, 0 drifted", unchanged=3)
    assert final_reports(job(None, mode="resync", conditions=COMPLETE), unchanged, None) == []


@pytest.mark.parametrize(
    "counts",
    [{"created": 1}, {"configured": 2}, {"pruned": 1}, {"drifted": 1}],
)
def test_a_resync_that_changed_something_posts_success_on_the_sha_it_converged(
    counts: dict[str, int],
) -> None:
    changed = summary("success", SHA_C, "applied 3, pruned 1, 1 drifted: ConfigMap/web", **counts)
    reports = final_reports(job(None, mode="resync", conditions=COMPLETE), changed, None)
    # A resync converges the branch like a push does, so it reports under the deploy context.
    assert reports == [StatusReport(SHA_C, SUCCESS, DEPLOY, changed.message)]


def test_a_resync_that_failed_posts_failure_on_the_sha_it_tried() -> None:
    message = "apply failed: deploy/web.yaml: Deployment/web: is in namespace 'other'"
    finished = job(None, mode="resync", conditions=failed("PodFailurePolicy"))
    reports = final_reports(finished, summary("failure", SHA_C, message), "PodFailurePolicy")
    assert reports_of(reports) == [(SHA_C, FAILURE, message)]


def reports_of(reports: list[StatusReport]) -> list[tuple[str, str, str]]:
    return [(r.sha, r.state, r.description) for r in reports]


# -- shorten ---------------------------------------------------------------------------------


def test_short_text_is_kept_with_whitespace_collapsed() -> None:
    assert shorten("applied 3,\n  pruned 0", GITHUB_DESCRIPTION_LIMIT) == "applied 3, pruned 0"


@pytest.mark.parametrize("limit", [GITHUB_DESCRIPTION_LIMIT, GITLAB_DESCRIPTION_LIMIT])
def test_long_text_is_cut_at_a_word_boundary_within_the_limit(limit: int) -> None:
    text = " ".join(f"ConfigMap/object-{n}" for n in range(60))
    short = shorten(text, limit)
    assert len(short) <= limit
    assert short.endswith("…")
    kept = short.removesuffix("…")
    assert text.startswith(kept)
    # The cut falls between words: what is kept ends a word of the original.
    assert text[len(kept)] == " "
    assert len(kept) > limit // 2


@pytest.mark.parametrize("limit", [GITHUB_DESCRIPTION_LIMIT, GITLAB_DESCRIPTION_LIMIT])
@pytest.mark.parametrize("unit", ["🚀", "配置映射", "é", "𠮷"])
def test_multi_byte_characters_count_as_one_and_are_never_split(unit: str, limit: int) -> None:
    text = unit * 400  # no spaces at all: the cut cannot fall on a word boundary
    short = shorten(text, limit)
    assert len(short) == limit
    kept = short.removesuffix("…")
    assert text.startswith(kept)
    # Every character survives a UTF-8 round trip: no half of a multi-byte sequence.
    assert kept.encode("utf-8").decode("utf-8") == kept
    assert len(kept.encode("utf-8")) == len(kept) * len(unit[0].encode("utf-8"))


def test_mixed_scripts_cut_at_a_space_between_words() -> None:
    text = "デプロイ 失敗 🚀 " * 40
    short = shorten(text, GITHUB_DESCRIPTION_LIMIT)
    assert len(short) <= GITHUB_DESCRIPTION_LIMIT
    kept = short.removesuffix("…")
    assert " ".join(text.split()).startswith(kept)
    assert kept.split()[-1] in ("デプロイ", "失敗", "🚀")


def test_a_long_first_word_is_cut_hard_rather_than_emptied() -> None:
    text = "x" * 300 + " tail"
    assert shorten(text, GITHUB_DESCRIPTION_LIMIT) == "x" * 139 + "…"


# -- a burst longer than one waiting Job holds -------------------------------------------------


BURST_TARGET = Target(
    name="shop",
    provider="github",
    repo="acme/shop",
    clone_url="https://github.com/acme/shop.git",
    branch="main",
    path="deploy",
    namespace="shop",
    service_account="hooksync-shop",
)
BURST_CONFIG = Config(job_image="img", public_url="https://h", targets=(BURST_TARGET,))


def dispatch_burst(shas: list[str]) -> list[dict[str, Any]]:
    """The target's apply Jobs after `shas` were pushed one after another while the first
    Job ran, each push dispatched as the Dispatcher does (decide, then create or fold)."""
    jobs: list[dict[str, Any]] = []
    for n, sha in enumerate(shas):
        delivery = f"d-{n}"
        decision = decide_push(jobs, sha, delivery)
        if isinstance(decision, Create):
            body = build_job(BURST_CONFIG, BURST_TARGET, "apply", sha, "refs/heads/main", delivery)
        elif isinstance(decision, CreateWaiting):
            body = build_waiting_job(
                BURST_CONFIG, BURST_TARGET, decision.active_job, sha, "refs/heads/main", delivery
            )
        elif isinstance(decision, FoldInto):
            annotations = decision.job["metadata"]["annotations"]
            annotations.update(folded_annotations(decision.job, sha, delivery, 0.0))
            continue
        else:
            raise AssertionError(f"push {n} of {sha} was a duplicate: {decision}")
        # The API server stamps seconds only: the whole burst lands in one second.
        body["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"
        jobs.append(body)
    return jobs


def test_a_burst_over_the_cap_ends_every_pending_status_once() -> None:
    shas = [f"{n:040x}" for n in range(1, 3 * MAX_RECORDED + 3)]
    jobs = dispatch_burst(shas)
    # One Job runs; the other 1,501 pushes wait in Jobs of at most MAX_RECORDED each.
    assert len(jobs) == 5
    assert all(len(job_shas(j)) <= MAX_RECORDED for j in jobs)
    assert sorted(sha for j in jobs for sha in job_shas(j)) == sorted(shas)
    pending = [r.sha for j in jobs for r in pending_reports(j)]
    assert sorted(pending) == sorted(shas)

    # Every Job ends having deployed the branch head, which is the burst's last push.
    for job_ in jobs:
        job_["spec"]["suspend"] = False
        job_["status"] = {"conditions": COMPLETE}
    carried = carried_shas(jobs)
    finals = [
        report
        for job_ in jobs
        for report in owned_reports(job_, final_reports(job_, summary(sha=shas[-1]), None), carried)
    ]
    assert sorted(r.sha for r in finals) == sorted(shas)
    assert {r.state for r in finals} == {SUCCESS}
    assert sum(r.description == f"included in {shas[-1][:7]}" for r in finals) == len(shas) - 1
