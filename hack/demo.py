"""`make demo`: hooksync's main job, end to end, on this machine.

It starts a local control plane with the process kubelet, a Git repository served over HTTP,
a GitHub stand-in and the receiver; then sends a signed push, a commit that changes the
ConfigMap and removes the Service, and a pull request, printing what happened in the namespace,
which statuses the commits got, and the comment the pull request got (read back through
PyGithub). It exits 0 only if every step did what it says.

`make demo HOST=gitea` (`--host gitea`) runs the same steps against a real Gitea instead, built
into the cache on first use: Gitea serves the Git, sends the webhooks and takes the statuses.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import github

from receiver.reporting.comments import is_marked
from world.cluster import LocalCluster
from world.demoapp import APP, CHANGE, PULL_REQUEST, app_files
from world.gitea_stack import GiteaDeliveryStack
from world.stack import DeliveryStack


class Demo:
    def __init__(self, stack: DeliveryStack) -> None:
        self.stack = stack
        self.failures: list[str] = []
        self.step_number = 0

    def step(self, title: str) -> None:
        self.step_number += 1
        print(f"\n== {self.step_number}. {title}", flush=True)

    def check(self, what: str, ok: bool) -> None:
        print(f"   [{'ok' if ok else 'FAILED'}] {what}", flush=True)
        if not ok:
            self.failures.append(what)

    def show_namespace(self) -> dict[str, dict[str, Any]]:
        objects = self.stack.objects()
        print(f"   namespace {self.stack.target_namespace!r} now holds:")
        for name, obj in sorted(objects.items()):
            detail = ""
            if name.startswith("ConfigMap/"):
                detail = f" data={obj.get('data')}"
            if name.startswith("Deployment/"):
                detail = f" replicas={obj['spec'].get('replicas')}"
            print(f"     - {name}{detail}")
        return objects

    def show_statuses(self, sha: str) -> None:
        for status in self.stack.statuses(sha):
            state = status.get("state") or status.get("status")  # Gitea says "status"
            print(
                f"   status on {sha[:7]}: {state:<8} {status['context']}: {status['description']}"
            )

    def pull_request_comment(self, number: int, head: str, timeout: float = 60) -> str | None:
        """The target's preview comment on pull request `number` once it names `head`, read
        through PyGithub from the Git host (the stand-in, or Gitea's GitHub-like API)."""
        stack = self.stack
        client = github.Github(
            base_url=stack.host_api_url(), auth=github.Auth.Token(stack.host_token), lazy=True
        )
        issue = client.get_repo(stack.repo_name).get_issue(number)
        deadline = time.monotonic() + timeout
        while True:
            ours = [c.body for c in issue.get_comments() if is_marked(c.body, stack.target)]
            if len(ours) == 1 and head[:7] in ours[0]:
                return str(ours[0])
            if len(ours) > 1 or time.monotonic() > deadline:
                print(f"   preview comments found: {len(ours)}")
                return None
            time.sleep(0.5)

    def wait(self, sha: str, context: str | None = None) -> dict[str, Any] | None:
        try:
            return self.stack.wait_final_status(sha, context, timeout=120)
        except TimeoutError as exc:
            print(f"   {exc}")
            return None


def run(stack: DeliveryStack) -> list[str]:
    demo = Demo(stack)
    receiver = stack.receivers[0]
    hook = f"/hooks/{stack.provider}"
    if isinstance(stack, GiteaDeliveryStack):
        started = stack.gitea.started_in
        print(f"Gitea at {stack.gitea.url} (started in {started:.1f}s) sends the webhooks")
    print(f"receiver at {receiver.url}; Jobs run in {stack.jobs_namespace!r}, converge "
          f"{stack.target_namespace!r}")  # fmt: skip

    demo.step("a signed push of the app: Deployment, Service, ConfigMap")
    first = stack.commit(app_files(APP), "Add the web app")
    answer = stack.push_event(first)
    print(f"   POST {hook} -> {answer.status_code} {answer.text}")
    demo.check("the receiver answered 202 (Job persisted)", answer.status_code == 202)
    status = demo.wait(first)
    demo.show_statuses(first)
    demo.check("the commit got a success status", state_of(status) == "success")
    objects = demo.show_namespace()
    demo.check(
        "ConfigMap, Service and Deployment exist",
        {"ConfigMap/web", "Service/web", "Deployment/web"} <= set(objects),
    )

    demo.step("a commit that changes the ConfigMap and removes the Service")
    second = stack.commit(app_files(CHANGE), "Say bonjour; drop the Service")
    answer = stack.push_event(second, before=first)
    print(f"   POST {hook} -> {answer.status_code} {answer.text}")
    demo.check("the receiver answered 202", answer.status_code == 202)
    status = demo.wait(second)
    demo.show_statuses(second)
    demo.check(
        "the commit got success, pruned 1",
        state_of(status) == "success" and "pruned 1" in (status or {}).get("description", ""),
    )
    objects = demo.show_namespace()
    demo.check("the ConfigMap says bonjour",
               objects.get("ConfigMap/web", {}).get("data") == {"greeting": "bonjour"})  # fmt: skip
    demo.check("the Service is gone", "Service/web" not in objects)
    before = {name: obj["metadata"]["resourceVersion"] for name, obj in objects.items()}

    demo.step("a pull request that would scale the Deployment to 3")
    head = stack.commit(app_files(PULL_REQUEST), "Scale to 3", branch="feature")
    answer = stack.pull_request_event(head)
    print(f"   POST {hook} (pull_request) -> {answer.status_code} {answer.text}")
    demo.check("the receiver answered 202", answer.status_code == 202)
    status = demo.wait(head, f"hooksync/preview: {stack.target}")
    demo.show_statuses(head)
    demo.check(
        "the head commit got a preview check that would change 1",
        state_of(status) == "success" and "change 1" in (status or {}).get("description", ""),
    )
    objects = demo.show_namespace()
    after = {name: obj["metadata"]["resourceVersion"] for name, obj in objects.items()}
    demo.check("the preview changed nothing in the namespace", before == after)

    comment = demo.pull_request_comment(1, head)
    demo.check("the pull request got one preview comment for this head", comment is not None)
    if comment is not None:
        print("   the pull request's comment, as the Git host holds it:")
        for line in comment.splitlines():
            print(f"   | {line}")
        demo.check(
            "the comment says what the check says", (status or {}).get("description", "") in comment
        )

    if status and status.get("target_url"):
        print(f"\n   run page of the preview: {status['target_url']}")
    return demo.failures


def state_of(status: dict[str, Any] | None) -> str | None:
    """A status's state: GitHub calls it "state", Gitea "status"."""
    return (status.get("state") or status.get("status")) if status else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host",
        choices=["github", "gitea"],
        default="github",
        help="the Git host: the GitHub stand-in (default) or a real Gitea",
    )
    host = parser.parse_args(argv).host
    started = time.monotonic()
    print("starting etcd, kube-apiserver, kube-controller-manager and the process kubelet ...")
    with tempfile.TemporaryDirectory(prefix="hooksync-demo-") as folder:
        failures: list[str] = ["the demo did not finish"]
        with LocalCluster() as cluster:
            print(f"local cluster ready in {time.monotonic() - started:.1f}s")
            stack = (
                GiteaDeliveryStack(cluster, Path(folder), target="shop")
                if host == "gitea"
                else DeliveryStack(cluster, Path(folder), target="shop")
            )
            failures = _guarded(lambda: run(stack.start()), stack.stop)
    print()
    if failures:
        print(f"demo FAILED: {len(failures)} step(s) did not do what they say:")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print(f"demo passed in {time.monotonic() - started:.0f}s; everything it started is stopped")
    return 0


def _guarded(action: Callable[[], list[str]], cleanup: Callable[[], None]) -> list[str]:
    try:
        return action()
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
