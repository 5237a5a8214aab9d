"""The push decision: create, wait, fold in or nothing, from a target's apply Jobs as listed."""

from __future__ import annotations

from typing import Any

from hooksync import names
from receiver.dispatch.coalescing import (
    MAX_RECORDED,
    BurstWindow,
    Create,
    CreateWaiting,
    Duplicate,
    FoldInto,
    decide_push,
    folded_annotations,
    to_release,
)
from receiver.jobview import job_shas

SHA_A = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
SHA_B = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA_C = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
SHA_D = "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"


def job(
    name: str,
    sha: str,
    *,
    delivery: str | None = None,
    suspended: bool = False,
    finished: str | None = None,
    waits_for: str | None = None,
    coalesced: list[str] | None = None,
    created: str = "2025-01-01T00:00:00Z",
) -> dict[str, Any]:
    """An apply Job as the API server lists it (only the fields the decision reads)."""
    annotations = {names.SHA: sha, names.REF: "refs/heads/main"}
    if delivery:
        annotations[names.DELIVERY] = delivery
    if waits_for:
        annotations[names.WAITS_FOR] = waits_for
    if coalesced:
        annotations[names.COALESCED_SHAS] = ",".join(coalesced)
    status: dict[str, Any] = {}
    if finished:
        status["conditions"] = [{"type": finished, "status": "True"}]
    return {
        "metadata": {
            "name": name,
            "annotations": annotations,
            "creationTimestamp": created,
            "resourceVersion": "7",
        },
        "spec": {"suspend": suspended},
        "status": status,
    }


RUNNING = job("hooksync-shop-apply-6113728", SHA_A, delivery="d-1")
WAITING = job(
    "hooksync-shop-apply-next-0a1b2c3d",
    SHA_B,
    delivery="d-2",
    suspended=True,
    waits_for=RUNNING["metadata"]["name"],
    created="2025-01-01T00:00:05Z",
)


# A minute after RUNNING was created (2025-01-01T00:00:00Z), in seconds since the epoch.
NOW = 1735689660.0


# decide_push


def test_no_jobs_creates() -> None:
    assert decide_push([], SHA_A, "d-1") == Create()


def test_only_finished_jobs_create() -> None:
    done = job("hooksync-shop-apply-6113728", SHA_A, delivery="d-1", finished="Complete")
    failed = job("hooksync-shop-apply-ec26c3e", SHA_B, delivery="d-2", finished="Failed")
    assert decide_push([done, failed], SHA_C, "d-3") == Create()


def test_a_condition_that_is_not_true_does_not_finish_a_job() -> None:
    running = job("hooksync-shop-apply-6113728", SHA_A)
    running["status"]["conditions"] = [{"type": "Complete", "status": "False"}]
    assert decide_push([running], SHA_B, "d-2") == CreateWaiting(running["metadata"]["name"])


def test_running_job_makes_a_waiting_one() -> None:
    decision = decide_push([RUNNING], SHA_B, "d-2")
    assert decision == CreateWaiting("hooksync-shop-apply-6113728")


def test_waiting_job_present_folds_into_it() -> None:
    decision = decide_push([RUNNING, WAITING], SHA_C, "d-3")
    assert isinstance(decision, FoldInto)
    assert decision.job is WAITING


def test_folds_into_the_newest_waiting_job() -> None:
    older = job("w-old", SHA_B, suspended=True, created="2025-01-01T00:00:01Z")
    newer = job("w-new", SHA_C, suspended=True, created="2025-01-01T00:00:09Z")
    decision = decide_push([newer, RUNNING, older], SHA_D, "d-4")
    assert isinstance(decision, FoldInto)
    assert decision.job is newer


def test_same_delivery_is_a_duplicate() -> None:
    decision = decide_push([RUNNING], SHA_A, "d-1")
    assert isinstance(decision, Duplicate)
    assert decision.job_name == "hooksync-shop-apply-6113728"
    assert "d-1" in decision.reason


def test_same_delivery_on_a_finished_job_is_still_a_duplicate() -> None:
    done = job("hooksync-shop-apply-6113728", SHA_A, delivery="d-1", finished="Failed")
    decision = decide_push([done], SHA_B, "d-1")
    assert isinstance(decision, Duplicate)
    assert decision.job_name == "hooksync-shop-apply-6113728"


def test_redelivery_listed_among_folded_deliveries_is_a_duplicate() -> None:
    waiting = job("w", SHA_B, delivery="d-2,d-3,d-4", suspended=True, waits_for="r")
    decision = decide_push([RUNNING, waiting], SHA_D, "d-3")
    assert isinstance(decision, Duplicate)
    assert decision.job_name == "w"


def test_same_sha_on_an_unfinished_job_is_a_duplicate() -> None:
    decision = decide_push([RUNNING], SHA_A, "another-delivery")
    assert isinstance(decision, Duplicate)
    assert decision.job_name == RUNNING["metadata"]["name"]
    assert SHA_A[:7] in decision.reason


def test_sha_folded_into_the_waiting_job_is_a_duplicate() -> None:
    waiting = job("w", SHA_B, suspended=True, waits_for="r", coalesced=[SHA_C])
    decision = decide_push([RUNNING, waiting], SHA_C, None)
    assert isinstance(decision, Duplicate)
    assert decision.job_name == "w"


def test_same_sha_on_a_finished_job_is_not_a_duplicate() -> None:
    # A new delivery of a SHA whose Job ended converges again: Git, not the event, decides.
    done = job("hooksync-shop-apply-6113728", SHA_A, delivery="d-1", finished="Complete")
    assert decide_push([done], SHA_A, "d-9") == Create()


def test_without_delivery_id_only_the_sha_decides() -> None:
    assert isinstance(decide_push([RUNNING], SHA_A, None), Duplicate)
    assert decide_push([RUNNING], SHA_B, None) == CreateWaiting(RUNNING["metadata"]["name"])


# to_release


def test_waiting_job_is_released_when_its_predecessor_finished() -> None:
    finished = job("hooksync-shop-apply-6113728", SHA_A, finished="Complete")
    assert to_release([finished, WAITING], NOW) == [WAITING]
    failed = job("hooksync-shop-apply-6113728", SHA_A, finished="Failed")
    assert to_release([failed, WAITING], NOW) == [WAITING]


def test_waiting_job_is_released_when_its_predecessor_is_gone() -> None:
    assert to_release([WAITING], NOW) == [WAITING]


def test_waiting_job_is_kept_while_its_predecessor_runs() -> None:
    assert to_release([RUNNING, WAITING], NOW) == []


def test_running_and_finished_jobs_are_never_released() -> None:
    done_waiting = job("w", SHA_B, suspended=True, waits_for="gone", finished="Failed")
    assert to_release([RUNNING, done_waiting], NOW) == []
    assert to_release([], NOW) == []


def pushed(job_: dict[str, Any], at: str) -> dict[str, Any]:
    """`job_` with its last push recorded at `at`."""
    annotations = {**job_["metadata"]["annotations"], names.LAST_PUSH: at}
    return {**job_, "metadata": {**job_["metadata"], "annotations": annotations}}


FINISHED = job("hooksync-shop-apply-6113728", SHA_A, finished="Complete")
WINDOW = BurstWindow(quiet_seconds=2, max_wait_seconds=30)


def test_waiting_job_holds_while_pushes_keep_arriving() -> None:
    # Created at 00:00:05, last push at 00:00:10.2: held at 00:00:11, run from 00:00:12.2.
    recent = pushed(WAITING, "2025-01-01T00:00:10.200Z")
    at_11 = 1735689611.0
    assert to_release([FINISHED, recent], at_11, WINDOW) == []
    assert to_release([FINISHED, recent], at_11 + 1.1, WINDOW) == []
    assert to_release([FINISHED, recent], at_11 + 1.2, WINDOW) == [recent]


def test_waiting_job_runs_after_its_max_wait_even_if_pushes_never_pause() -> None:
    # Created at 00:00:05; a push every moment; max wait 30 s runs it at 00:00:35.
    busy = pushed(WAITING, "2025-01-01T00:00:34.900Z")
    at_34 = 1735689634.95
    assert to_release([FINISHED, busy], at_34, WINDOW) == []
    assert to_release([FINISHED, busy], at_34 + 0.1, WINDOW) == [busy]


def test_burst_window_never_releases_a_job_whose_predecessor_runs() -> None:
    quiet_for_long = pushed(WAITING, "2025-01-01T00:00:05Z")
    assert to_release([RUNNING, quiet_for_long], NOW + 3600, WINDOW) == []


def test_waiting_job_without_a_last_push_is_not_held() -> None:
    # Written before the burst window existed, or by hand: nothing to wait for.
    assert to_release([FINISHED, WAITING], NOW, WINDOW) == [WAITING]
    garbled = pushed(WAITING, "yesterday")
    assert to_release([FINISHED, garbled], NOW, WINDOW) == [garbled]


def test_release_then_decide_waits_behind_the_released_job() -> None:
    finished = job("hooksync-shop-apply-6113728", SHA_A, finished="Complete")
    [released] = to_release([finished, WAITING], NOW)
    now_running = {**released, "spec": {"suspend": False}}
    decision = decide_push([finished, now_running], SHA_C, "d-3")
    assert decision == CreateWaiting(WAITING["metadata"]["name"])


# folded_annotations


def test_folded_annotations_append_in_order() -> None:
    first = folded_annotations(WAITING, SHA_C, "d-3", NOW)
    assert first == {
        names.COALESCED_SHAS: SHA_C,
        names.DELIVERY: "d-2,d-3",
        names.LAST_PUSH: "2025-01-01T00:01:00.000Z",
    }
    folded = {
        **WAITING,
        "metadata": {
            **WAITING["metadata"],
            "annotations": {**WAITING["metadata"]["annotations"], **first},
        },
    }
    second = folded_annotations(folded, SHA_D, "d-4", NOW + 1.5)
    assert second[names.COALESCED_SHAS] == f"{SHA_C},{SHA_D}"
    assert second[names.DELIVERY] == "d-2,d-3,d-4"
    assert second[names.LAST_PUSH] == "2025-01-01T00:01:01.500Z"


def test_folded_annotations_never_repeat_a_sha_or_delivery() -> None:
    waiting = job("w", SHA_B, delivery="d-2,d-3", suspended=True, coalesced=[SHA_C])
    again = folded_annotations(waiting, SHA_C, "d-3", NOW)
    assert again[names.COALESCED_SHAS] == SHA_C
    assert again[names.DELIVERY] == "d-2,d-3"
    # The Job's own SHA is not copied into the coalesced list.
    own = folded_annotations(waiting, SHA_B, None, NOW)
    assert own[names.COALESCED_SHAS] == SHA_C
    assert own[names.DELIVERY] == "d-2,d-3"
    after = {"metadata": {"annotations": {**waiting["metadata"]["annotations"], **own}}}
    assert job_shas(after) == [SHA_B, SHA_C]


def test_folded_annotations_without_prior_annotations() -> None:
    bare = {"metadata": {"name": "w"}, "spec": {"suspend": True}}
    assert folded_annotations(bare, SHA_A, None, NOW) == {
        names.COALESCED_SHAS: SHA_A,
        names.DELIVERY: "",
        names.LAST_PUSH: "2025-01-01T00:01:00.000Z",
    }


# Bursts longer than one waiting Job holds


def full_waiting_job() -> dict[str, Any]:
    shas = [f"{n:040x}" for n in range(1, MAX_RECORDED)]
    return job("w", SHA_B, suspended=True, waits_for=RUNNING["metadata"]["name"], coalesced=shas)


def test_a_full_waiting_job_gets_another_waiting_behind_it() -> None:
    full = full_waiting_job()
    assert len(job_shas(full)) == MAX_RECORDED
    assert decide_push([RUNNING, full], SHA_C, "d-3") == CreateWaiting("w")


def test_pushes_fold_into_the_end_of_the_queue_whatever_the_creation_times() -> None:
    # Created in the same second as the full Job it waits behind: only waits-for tells them apart.
    full = full_waiting_job()
    behind = job(
        "w2", SHA_C, suspended=True, waits_for="w", created=full["metadata"]["creationTimestamp"]
    )
    for jobs in ([RUNNING, full, behind], [behind, full, RUNNING]):
        decision = decide_push(jobs, SHA_D, "d-4")
        assert isinstance(decision, FoldInto)
        assert decision.job is behind
