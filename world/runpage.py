"""A run page with a diff on it, in headless Chromium: a push of a small app, then a pull
request that changes, adds, removes and rotates a Secret, previewed by the receiver.

The Chromium test of the run page and `hack/run_page_screenshot.py` (the README's picture)
both use it, so the picture shows what the test checks.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from world.manifests import configmap, deployment, service
from world.stack import DeliveryStack

CHROMIUM = "/usr/bin/chromium"
# The Secret's values: no page, log or status may ever show them.
SECRET_VALUES = ("s3cret-before-4f1c", "s3cret-after-9d2e")


def _secret(password: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "web-credentials"},
            "stringData": {"password": password},
        }
    )


APP: dict[str, str | bytes | None] = {
    "deploy/config.yaml": configmap("web", {"greeting": "hello", "colour": "blue"}),
    "deploy/service.yaml": service("web"),
    "deploy/deployment.yaml": deployment("web"),
    "deploy/secret.yaml": _secret(SECRET_VALUES[0]),
}
PULL_REQUEST: dict[str, str | bytes | None] = {
    "deploy/config.yaml": configmap("web", {"greeting": "bonjour", "colour": "blue"}),
    "deploy/service.yaml": None,
    "deploy/deployment.yaml": deployment("web", replicas=3, image="registry.local/web:2"),
    "deploy/secret.yaml": _secret(SECRET_VALUES[1]),
    "deploy/flags.yaml": configmap("flags", {"new-checkout": "on"}),
}


@dataclass(frozen=True)
class RunPages:
    """The signed run page links of the push's apply and of the pull request's preview."""

    apply_url: str
    preview_url: str


def push_then_preview(stack: DeliveryStack) -> RunPages:
    """Deploy APP with a push, then have the receiver preview PULL_REQUEST; both runs' pages."""
    sha = stack.commit(APP, "Add the web app")
    answer = stack.push_event(sha)
    if answer.status_code != 202:
        raise RuntimeError(f"push answered {answer.status_code}: {answer.text}")
    applied = stack.wait_final_status(sha, timeout=120)
    head = stack.commit(PULL_REQUEST, "Say bonjour, scale to 3, rotate the password", "feature")
    answer = stack.pull_request_event(head)
    if answer.status_code != 202:
        raise RuntimeError(f"pull request answered {answer.status_code}: {answer.text}")
    previewed = stack.wait_final_status(head, f"hooksync/preview: {stack.target}", timeout=120)
    for status in (applied, previewed):
        if status.get("state") != "success" or not status.get("target_url"):
            raise RuntimeError(f"expected a successful status with a run link: {status}")
    return RunPages(str(applied["target_url"]), str(previewed["target_url"]))


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a fresh profile and nothing in the background."""
    with tempfile.TemporaryDirectory(prefix="hooksync-chromium-") as profile:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )


def screenshot(url: str, path: Path, width: int = 1100, height: int = 1500) -> None:
    """A PNG of the page at `url`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    shot = chromium(f"--screenshot={path}", f"--window-size={width},{height}", url)
    if shot.returncode != 0 or not path.exists():
        raise RuntimeError(f"chromium --screenshot failed: {shot.stderr[-2000:]}")
