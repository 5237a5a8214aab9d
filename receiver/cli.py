"""`hooksync-receiver --config FILE`: serve webhooks, keep CronJobs and statuses in step.

Background work (configuration reload, CronJob reconcile, the leader's Job watch) runs in
threads, so webhook intake never waits for it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from hooksync import logs
from hooksync.config import Config, ConfigError, load_config, read_secret
from hooksync.kubeapi import api_client
from receiver.app import create_app
from receiver.dispatch.cronjobs import reconcile_cronjobs
from receiver.intake.admission import BodyAdmission
from receiver.intake.limits import BodyBudget
from receiver.intake.protocol import http_protocol
from receiver.kept import KeptObjects
from receiver.pages.run import run_page_route
from receiver.pages.status import STATUS_TOKEN_ENV, status_page_route
from receiver.pages.sync import SYNC_TOKEN_ENV, sync_now_route
from receiver.reporting.loop import start_reporting
from receiver.secrets import ReceiverSecrets
from receiver.state import ReceiverState

log = logging.getLogger("hooksync.receiver")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
CONFIG_POLL_SECONDS = 5.0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hooksync-receiver",
        description="Receive signed GitHub and GitLab webhooks and start converge Jobs.",
    )
    parser.add_argument("--config", required=True, help="configuration file (YAML)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument("--kubeconfig", help="kubeconfig file; default: in-cluster")
    parser.add_argument("--log-format", choices=("json", "text"), default="json")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning"),
        default="info",
        help="debug adds a line for every delivery that needs nothing done",
    )
    parser.add_argument(
        "--no-background",
        action="store_true",
        help="intake only: no CronJob reconcile and no status reporting (for benchmarks)",
    )
    return parser.parse_args(list(argv))


def receiver_namespace(cfg: Config) -> str:
    return cfg.namespace or own_namespace()


def own_namespace() -> str:
    """The namespace the receiver runs in (where Jobs run unless the configuration says)."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return "hooksync"


class ConfigWatcher:
    """Reloads the configuration when the file's content changes, and reconciles CronJobs."""

    def __init__(self, path: str, state: ReceiverState) -> None:
        self.path = path
        self.state = state
        self.digest = self._digest()
        self.stop = threading.Event()
        self.reconciled = False

    def _digest(self) -> str:
        try:
            return hashlib.sha256(Path(self.path).read_bytes()).hexdigest()
        except OSError:
            return ""

    def run(self) -> None:
        while True:
            digest = self._digest()
            if digest and digest != self.digest:
                try:
                    self.state.config = load_config(self.path, own_namespace())
                    self.digest = digest
                    self.reconciled = False
                    log.info(
                        "configuration reloaded", extra={"targets": len(self.state.config.targets)}
                    )
                except ConfigError as exc:
                    log.error("configuration not reloaded", extra={"reason": str(exc)})
                    self.digest = digest
            if not self.reconciled:
                try:
                    reconcile_cronjobs(self.state.api, self.state.config, self.state.namespace)
                    self.reconciled = True
                except Exception as exc:
                    log.warning("resync CronJobs not reconciled yet", extra={"reason": str(exc)})
            if self.stop.wait(CONFIG_POLL_SECONDS):
                return


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(args.log_format, getattr(logging, args.log_level.upper()))
    try:
        cfg = load_config(args.config, own_namespace())
        secrets = ReceiverSecrets.from_environment()
        status_tokens = read_secret(STATUS_TOKEN_ENV)
        sync_tokens = read_secret(SYNC_TOKEN_ENV)
    except ConfigError as exc:
        print(f"hooksync-receiver: {exc}", file=sys.stderr)
        return 2
    # Fail fast: a webhook waiting on an unreachable API server gets a 503, not a hang.
    api = api_client(args.kubeconfig, pool_size=32, fail_fast=True)
    state = ReceiverState(config=cfg, secrets=secrets, api=api, namespace=receiver_namespace(cfg))
    background: list[threading.Event] = []
    if not args.no_background:
        watcher = ConfigWatcher(args.config, state)
        threading.Thread(target=watcher.run, name="config-watch", daemon=True).start()
        background.append(watcher.stop)
        kept_stop = threading.Event()
        state.kept = KeptObjects.of(state.api, state.namespace, state.job_created, kept_stop)
        state.kept.start()
        background.append(kept_stop)
        background.extend(start_reporting(state))
    limits = cfg.http  # read at start: uvicorn's settings cannot change while it serves
    pages = [
        run_page_route(state),
        status_page_route(state, status_tokens),
        sync_now_route(state, sync_tokens),
    ]
    app = BodyAdmission(create_app(state, pages), BodyBudget(limits.unverified_body_bytes))
    log.info(
        "receiver starting",
        extra={"namespace": state.namespace, "targets": len(cfg.targets), "port": args.port},
    )
    try:
        # log_config=None: uvicorn's own messages go through the root handler, as JSON too.
        # http_protocol(): a request that is not valid HTTP gets a JSON 400 as well, and every
        # connection keeps the deadlines and header limits of the configuration's `http`.
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
            log_config=None,
            http=http_protocol(limits),
            timeout_keep_alive=limits.keep_alive_timeout_seconds,
            h11_max_incomplete_event_size=limits.max_header_bytes,
        )
    finally:
        for stop in background:
            stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
