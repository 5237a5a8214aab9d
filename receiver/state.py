"""What the receiver's parts share while it runs: configuration, secrets, API client, metrics.

The HTTP app, the background threads (configuration reload, the leader's loop) and the pages
all read one ReceiverState; `config` is swapped whole when the file changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client

from hooksync.config import Config
from receiver.dispatch.dispatcher import Dispatcher
from receiver.jobapi import JobApi
from receiver.kept import KeptObjects
from receiver.metrics import ReceiverMetrics
from receiver.secrets import ReceiverSecrets

READY_CACHE_SECONDS = 2.0
# Shorter than the Job API's timeout: /readyz must answer within the probe's 3 s.
READY_TIMEOUT = (1.0, 2.0)


@dataclass
class ReceiverState:
    """What the handlers and threads share; `config` may be swapped when the file changes."""

    config: Config
    secrets: ReceiverSecrets
    api: client.ApiClient
    namespace: str
    metrics: ReceiverMetrics = field(default_factory=ReceiverMetrics)
    clock: Callable[[], float] = time.time
    # Set by intake when it created or changed a Job, so the leader's loop looks at once.
    job_created: threading.Event = field(default_factory=threading.Event)
    # The objects kept in step with the API server, when the background threads run (else
    # every look lists them).
    kept: KeptObjects | None = None
    jobs: JobApi = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    _ready_at: float = field(default=0.0, init=False)
    _ready: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.jobs = JobApi(self.api, self.namespace)
        # Reads `config` on each dispatch, so a reload reaches it.
        self.dispatcher = Dispatcher(self.jobs, lambda: self.config)

    def api_reachable(self) -> bool:
        """Whether the API server answered lately (cached for READY_CACHE_SECONDS)."""
        now = time.monotonic()
        if now - self._ready_at < READY_CACHE_SECONDS:
            return self._ready
        try:
            client.VersionApi(self.api).get_code(_request_timeout=READY_TIMEOUT)
            self._ready = True
        except Exception:
            self._ready = False
        self._ready_at = now
        return self._ready
