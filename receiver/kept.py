"""What the receiver keeps in step with the API server (`receiver.following`), on every
replica: the Jobs not reported yet, the Leases it writes (the targets' records and the recent
runs) and the resync CronJobs.

The leader's reporter reads the Jobs from here, and the status page all three, so neither
lists them on each look. Each is kept slimmed to what the receiver reads of it: a Job without
its pod template, a CronJob as its schedule. What the page needs of a Job (its target, whether
it runs, the record it would leave) is worked out as it arrives, and so is a record Lease's
record: a view of the page at fleet size parses neither a thousand summaries nor a thousand
records.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass

from kubernetes import client

from hooksync import names
from receiver import jobview
from receiver.following import Followed, without_managed_fields
from receiver.jobapi import Object, job_selector
from receiver.reporting import records


def slim_job(job: Object) -> Object:
    """Pure: a Job as the receiver reads it (metadata, status, whether it is suspended)."""
    spec = job.get("spec") or {}
    return {**without_managed_fields(job), "spec": {"suspend": bool(spec.get("suspend"))}}


def slim_cronjob(cronjob: Object) -> Object:
    """Pure: a CronJob as the status page reads it (its labels and schedule)."""
    spec = cronjob.get("spec") or {}
    kept = {key: spec[key] for key in ("schedule", "suspend") if key in spec}
    return {**without_managed_fields(cronjob), "spec": kept}


def unreported(job: Object) -> bool:
    return not jobview.is_reported(job)


def unreported_job(job: Object) -> records.UnreportedJob:
    """What the status page reads of a kept Job (`records.unreported_job`), worked out once
    per version of the Job rather than on every view of the page."""
    return records.unreported_job(job, datetime.datetime.now(datetime.UTC))


@dataclass(frozen=True)
class KeptObjects:
    jobs: Followed  # not reported yet
    leases: Followed  # the records and the recent runs
    cronjobs: Followed  # the resync CronJobs

    @classmethod
    def of(
        cls, api: client.ApiClient, namespace: str, wake: threading.Event, stop: threading.Event
    ) -> KeptObjects:
        """Followers of the receiver's objects in `namespace`; a change to a Job sets `wake`."""
        batch = client.BatchV1Api(api)
        managed = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE}"
        return cls(
            jobs=Followed(
                "jobs",
                batch.list_namespaced_job,
                namespace,
                job_selector(unreported=True),
                stop,
                slim=slim_job,
                matches=unreported,
                changed=wake.set,
                derive=unreported_job,
            ),
            leases=Followed(
                "leases",
                client.CoordinationV1Api(api).list_namespaced_lease,
                namespace,
                managed,
                stop,
                derive=records.record_of_lease,
            ),
            cronjobs=Followed(
                "cronjobs",
                batch.list_namespaced_cron_job,
                namespace,
                job_selector(mode="resync"),
                stop,
                slim=slim_cronjob,
            ),
        )

    def start(self) -> None:
        for followed in (self.jobs, self.leases, self.cronjobs):
            followed.start()
