"""`hooksync-job`: the Job's container command. Converge, report, exit with the documented code.

Exit codes: 0 done (or nothing to do); 2 permanent (the Job fails without retries); 3 the
target's Lease is held (retry later); anything else transient.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from hooksync import logs
from hooksync.jobspec import (
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    JobSpec,
    JobSpecError,
    parse_job_args,
)
from hooksync.summary import RunSummary
from jobimage.errors import ConvergeError, TransientError
from jobimage.fetch import GitCredentials, PendingFetch, redact, start_fetch

if TYPE_CHECKING:
    from jobimage.lease import TargetLease

log = logging.getLogger("hooksync.job")

TERMINATION_LOG_ENV = "HOOKSYNC_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
LEASE_WAIT_SECONDS = float(os.environ.get("HOOKSYNC_LEASE_WAIT_SECONDS", "60"))
LEASE_POLL_SECONDS = 1.0


def _terminated(signum: int, frame: FrameType | None) -> None:
    # The kubelet sends SIGTERM when the pod is deleted: unwind, so the Lease is released now
    # rather than expiring, and the summary says what happened.
    raise TransientError("terminated (the pod was deleted or the Job's deadline passed)")


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure(os.environ.get("HOOKSYNC_LOG_FORMAT", "json"))
    signal.signal(signal.SIGTERM, _terminated)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        spec = parse_job_args(args)
    except JobSpecError as exc:
        print(f"hooksync-job: {exc}", file=sys.stderr)
        return EXIT_PERMANENT
    # How long the process took to get here (mostly imports): a figure of the push path. Like
    # every line of the Job's log, it names the target.
    log.info(
        "start", extra={"target": spec.target, "step": "start", "process_seconds": process_age()}
    )
    summary, code = run(spec)
    write_summary(summary)
    return code


def run(spec: JobSpec) -> tuple[RunSummary, int]:
    """Converge under the target's Lease; always returns a summary and the exit code.

    The fetch starts first, in a thread, and the rest of the Job's modules are imported only
    then: git and the imports, the Lease and the namespace check overlap instead of queueing.
    """
    credentials = GitCredentials()
    workdir = Path(tempfile.mkdtemp(prefix="hooksync-job-", dir=os.environ.get("TMPDIR")))
    try:
        credentials = GitCredentials.load(spec.git_credentials)
    except ConvergeError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        return _failure(spec, redact(str(exc), credentials)), EXIT_PERMANENT
    pending = start_fetch(spec, workdir, credentials)
    try:
        return _run_fetching(spec, workdir, credentials, pending)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_fetching(
    spec: JobSpec, workdir: Path, credentials: GitCredentials, pending: PendingFetch | None
) -> tuple[RunSummary, int]:
    from hooksync.kubeapi import KubeConfigError
    from hooksync.leases import holder_identity
    from jobimage.kubeclient import connect
    from jobimage.lease import LeaseHeld, TargetLease

    try:
        api = connect()
    except (ConvergeError, KubeConfigError) as exc:
        return _failure(spec, redact(str(exc), credentials)), EXIT_PERMANENT
    lease = TargetLease(api, spec.target, spec.namespace, holder_identity())
    try:
        held: TargetLease | None = None
        if spec.mode != "preview":  # a dry run changes nothing, so it need not wait its turn
            _acquire_waiting(lease, spec)
            log.info("lease acquired", extra={"target": spec.target, "step": "lease"})
            held = lease
        # The pipeline's modules load only now: the Lease, the first API call, waits for
        # nothing it does not need, and git has been fetching all along.
        from jobimage.converge import converge
        from jobimage.kube import Cluster

        summary = converge(spec, Cluster(api), workdir, credentials, lease=held, pending=pending)
        return summary, EXIT_OK
    except LeaseHeld as exc:
        log.info("lease held", extra={"target": spec.target, "step": "lease"})
        return RunSummary(result="lease-held", mode=spec.mode, message=str(exc)), exc.exit_code
    except ConvergeError as exc:
        message = redact(str(exc), credentials)
        log.error(
            "converge failed", extra={"target": spec.target, "step": exc.step, "reason": message}
        )
        return _failure(spec, message, exc.step), exc.exit_code
    except Exception as exc:
        message = redact(f"{type(exc).__name__}: {exc}", credentials)
        log.error("converge failed unexpectedly", extra={"target": spec.target, "reason": message})
        return _failure(spec, message), EXIT_TRANSIENT
    finally:
        lease.release()
        api.close()


def _acquire_waiting(lease: TargetLease, spec: JobSpec) -> None:
    """Wait a while for a running converge of the same target, then give up with exit 3.

    The wait is at least one Lease duration (unless HOOKSYNC_LEASE_WAIT_SECONDS says less):
    a Lease whose holder died is taken over only after this process has watched it for that
    long, and a shorter wait would give up on it again on every retry.
    """
    from jobimage.lease import LEASE_DURATION_SECONDS, LeaseHeld

    wait = max(spec.timeout_seconds, LEASE_DURATION_SECONDS + 2 * LEASE_POLL_SECONDS)
    deadline = time.monotonic() + min(LEASE_WAIT_SECONDS, wait)
    while True:
        try:
            lease.acquire()
            return
        except LeaseHeld:
            if time.monotonic() >= deadline:
                raise
            time.sleep(LEASE_POLL_SECONDS)


def process_age() -> float | None:
    """Seconds since the kernel started this process (or the one it replaced by exec); None
    where /proc cannot say."""
    try:
        stat = Path("/proc/self/stat").read_text()
        # Field 22, start time in clock ticks since boot; the name in field 2 may hold spaces.
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return round(age, 3)


def _failure(spec: JobSpec, message: str, step: str | None = None) -> RunSummary:
    """A failed run's summary; the message says the step, for the commit status."""
    verb = "preview" if spec.mode == "preview" else "apply"
    where = f"{step}: " if step else ""
    return RunSummary(
        result="failure",
        sha=spec.sha,
        mode=spec.mode,
        message=f"{verb} failed: {where}{message}",
        failed_step=step,
    )


def write_summary(summary: RunSummary) -> None:
    """Print the summary, and write it where the kubelet reads the termination message."""
    text = summary.to_json()
    print(text, flush=True)
    path = Path(os.environ.get(TERMINATION_LOG_ENV, DEFAULT_TERMINATION_LOG))
    # Outside a pod the file does not exist; creating it in /dev would help nobody.
    if path.exists():
        try:
            path.write_text(text)
        except OSError as exc:
            log.warning("cannot write termination message", extra={"reason": exc.strerror})


if __name__ == "__main__":
    sys.exit(main())
