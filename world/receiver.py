"""The receiver as a real process on loopback (`hooksync-receiver`), for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import yaml

from world.controlplane import free_port


class ReceiverProcess:
    """Runs `python -m receiver.cli` with a config file, secrets in its environment."""

    def __init__(
        self,
        directory: Path,
        config: dict[str, Any],
        kubeconfig: Path,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.directory = directory
        self.config_path = directory / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.kubeconfig = kubeconfig
        self.env = dict(env or {})
        self.args = list(args or [])
        self.port = free_port()
        self.log_path = directory / f"receiver-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config))

    def start(self, timeout: float = 30.0) -> ReceiverProcess:
        self._log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSYNC_")}
        env.update(self.env)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "receiver.cli",
                "--config",
                str(self.config_path),
                "--kubeconfig",
                str(self.kubeconfig),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *self.args,
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[1],
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log()[-3000:]
                self.stop()
                raise RuntimeError(f"receiver exited at start-up:\n{log}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        log = self.log()[-3000:]
        # A receiver that never got healthy must not outlive the caller that gave up on it.
        self.stop()
        raise RuntimeError(f"receiver not healthy after {timeout}s:\n{log}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> ReceiverProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
