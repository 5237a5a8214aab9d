"""A burst longer than one waiting Job holds, dispatched against the real API server.

The Dispatcher runs in this process against the local control plane, as the receiver runs it
for each delivery. The target's ServiceAccount does not exist, so the Job controller's pods are
refused and the first Job stays running for the whole burst: every later push waits.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from hooksync import names
from hooksync.config import Config, parse_config
from receiver import jobview
from receiver.dispatch.coalescing import MAX_RECORDED
from receiver.dispatch.dispatcher import Dispatcher
from receiver.intake.routing import APPLY, JobRequest
from receiver.jobapi import JobApi, job_selector

pytestmark = pytest.mark.cluster

EXTRA = 20  # pushes past the first full waiting Job


def config(namespace: str) -> Config:
    return parse_config(
        f"namespace: {namespace}\njobImage: hooksync-job:test\npublicURL: http://127.0.0.1:9\n"
        "targets:\n- {name: capped, provider: github, repo: acme/capped, branch: main,"
        " namespace: capped, serviceAccount: hooksync-capped-absent}\n"
    )


@pytest.fixture
def jobs(kube: client.ApiClient, namespace: str) -> Iterator[JobApi]:
    api = JobApi(kube, namespace)
    try:
        yield api
    finally:
        # Nothing posts these Jobs' statuses, so nothing lifts their finalizer but this; the
        # namespace would stay Terminating otherwise.
        for job in api.list_jobs(job_selector()):
            api.patch_job(jobview.name_of(job), {"metadata": {"finalizers": None}})


def test_a_burst_past_the_cap_queues_a_second_waiting_job_and_drops_no_sha(
    jobs: JobApi, namespace: str
) -> None:
    cfg = config(namespace)
    dispatcher = Dispatcher(jobs, lambda: cfg)
    target = cfg.targets[0]
    shas = [f"{n:040x}" for n in range(1, MAX_RECORDED + EXTRA + 2)]

    def push(n: int, sha: str) -> str:
        request = JobRequest(
            target=target, mode=APPLY, sha=sha, ref="refs/heads/main", delivery_id=f"d-{n}"
        )
        return dispatcher.dispatch(request).outcome

    outcomes = [push(n, sha) for n, sha in enumerate(shas)]
    assert outcomes == ["created"] + ["coalesced"] * (len(shas) - 1)

    listed = {jobview.name_of(j): j for j in jobs.list_jobs(job_selector(target="capped"))}
    running = [j for j in listed.values() if not jobview.is_suspended(j)]
    waiting = [j for j in listed.values() if jobview.is_suspended(j)]
    assert len(running) == 1 and len(waiting) == 2, sorted(listed)
    first = next(j for j in waiting if jobview.waits_for(j) == jobview.name_of(running[0]))
    second = next(j for j in waiting if jobview.waits_for(j) == jobview.name_of(first))
    # The API server kept every SHA and delivery: the full Job holds exactly the cap.
    assert len(jobview.job_shas(first)) == MAX_RECORDED
    assert len(jobview.job_shas(second)) == EXTRA
    recorded = [sha for j in listed.values() for sha in jobview.job_shas(j)]
    assert sorted(recorded) == sorted(shas)
    deliveries = [d for j in listed.values() for d in jobview.annotation_list(j, names.DELIVERY)]
    assert sorted(deliveries) == sorted(f"d-{n}" for n in range(len(shas)))

    # A redelivery of a push on the full Job is still known, and still only once.
    assert push(1, shas[1]) == "duplicate"
    assert push(len(shas), shas[2]) == "duplicate"
    assert len(jobs.list_jobs(job_selector(target="capped"))) == 3
