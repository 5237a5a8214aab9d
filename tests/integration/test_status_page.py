"""The status page in a real browser: headless Chromium loads `GET /` from the receiver after a
deploy, the rows match the cluster, HTML in payload-born strings stays text, and a screenshot
lands in test-artifacts/status-page.png.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from hooksync import names
from hooksync.summary import RunSummary
from receiver.reporting.links import sign_run
from world.cluster import LocalCluster
from world.kubelet import wait_until
from world.receiver import ReceiverProcess
from world.stack import DeliveryStack

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_BRANCH = "feat/<b>x"  # a valid Git branch name (see hooksync.refs)
APP = {
    "deploy/configmap.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: hello\n"
    ),
    "deploy/service.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
        "  selector: {app: web}\n  ports:\n  - port: 80\n"
    ),
}


class PageStack(DeliveryStack):
    """The delivery stack, plus a second target that has never run: its branch name holds
    HTML and its resync schedule (1 January, 00:00 UTC) cannot fire during the test."""

    def config(self) -> dict[str, Any]:
        document = super().config()
        second = dict(document["targets"][0])
        second.update(
            name="page-two", repo="acme/page-two", branch=HOSTILE_BRANCH,
            namespace="page-two", serviceAccount="hooksync-page-two", resync="0 0 1 1 *",
        )  # fmt: skip
        second.pop("gitSecret")
        document["targets"].append(second)
        return document


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="hooksync-chromium-") as profile:
        return subprocess.run(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--user-data-dir={profile}", *args,
            ],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install -y chromium` "
                    "(.ci/run does)")  # fmt: skip
    return CHROMIUM


@pytest.fixture(scope="module")
def deployed(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with PageStack(cluster, tmp_path_factory.mktemp("page-stack"), target="page") as stack:
        sha = stack.commit(APP, "deploy <script>alert(1)</script>")
        answer = stack.push_event(sha)
        assert answer.status_code == 202, answer.text
        job = answer.json()["jobs"][0]["job"]
        assert stack.wait_final_status(sha)["state"] == "success"
        batch = client.BatchV1Api(stack.api)

        def annotations() -> dict[str, str]:
            read = batch.read_namespaced_job(job, stack.jobs_namespace)
            return dict(read.metadata.annotations or {})

        wait_until(lambda: annotations().get(names.REPORTED) == "complete", timeout=30)
        # The page reads a reported run from the target's record: give it a message that
        # carries HTML, as a hostile commit could make a Job say.
        summary = RunSummary.from_json(annotations()[names.SUMMARY])
        assert summary is not None and summary.message.startswith("applied 2")
        client.CoordinationV1Api(stack.api).patch_namespaced_lease(
            names.record_name("page"),
            stack.jobs_namespace,
            {"metadata": {"annotations": {"hooksync.dev/last-message": f"applied 2 {HOSTILE}"}}},
        )
        yield stack, sha, job


class Dom(HTMLParser):
    """Elements, link targets and text of a serialised DOM, by the id of the table row."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self.hrefs: dict[str, list[str]] = {}
        self.text: list[str] = []
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "tr":
            self._row = values.get("id")
        if tag == "a" and self._row:
            self.hrefs.setdefault(self._row, []).append(values.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._row:
            self.rows.setdefault(self._row, []).append(data)

    def row(self, row_id: str) -> str:
        return " ".join(" ".join(self.rows.get(row_id, [])).split())


def test_the_status_page_in_chromium_matches_the_cluster(browser: str, deployed: Any) -> None:
    stack, sha, job = deployed
    url = f"{stack.receivers[0].url}/"
    dumped = chromium("--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = Dom()
    dom.feed(dumped.stdout)

    # Nothing from a payload, Git or a Job became markup.
    assert not {"img", "script", "b"} & set(dom.tags), sorted(set(dom.tags))
    text = " ".join("".join(dom.text).split())
    assert HOSTILE in text and HOSTILE_BRANCH in text

    # The target's row, against what the cluster holds.
    lease = client.CoordinationV1Api(stack.api).read_namespaced_lease(
        "hooksync-record-page", stack.jobs_namespace
    )
    assert lease.metadata.annotations["hooksync.dev/applied-sha"] == sha
    row = dom.row("target-page")
    assert "acme/page" in row and "branch main" in row
    assert f" {stack.target_namespace} " in f" {row} "
    assert sha[:12] in row and "success" in row and "idle" in row
    assert f"{stack.host.api_url}/acme/page/commit/{sha}" in dom.hrefs["target-page"]
    assert any(f"/runs/{job}?sig=" in href for href in dom.hrefs["target-page"])
    assert f"applied 2 {HOSTILE}" in row

    # The target that never ran: its hostile branch as text, and when it resyncs next.
    other = dom.row("target-page-two")
    assert HOSTILE_BRANCH in other and "no run recorded" in other
    next_new_year = datetime.datetime.now(datetime.UTC).year + 1
    assert f"{next_new_year}-01-01 00:00 UTC" in other

    # The recent runs: every Job in the receiver's namespace, newest first, each linked. The
    # page lists only the Jobs not reported yet; the leader kept the reported ones' runs.
    kept = client.CoordinationV1Api(stack.api).read_namespaced_lease(
        "hooksync-recent-runs", stack.jobs_namespace
    )
    assert f'"job":"{job}"' in kept.metadata.annotations["hooksync.dev/recent-runs"]
    jobs = client.BatchV1Api(stack.api).list_namespaced_job(stack.jobs_namespace).items
    assert any(j.metadata.labels.get(names.REPORTED) for j in jobs)
    newest_first = [
        j.metadata.name
        for j in sorted(jobs, key=lambda j: (j.metadata.creation_timestamp, j.metadata.name),
                        reverse=True)
    ]  # fmt: skip
    assert newest_first[0] == job
    runs = "".join(dom.text).split("Recent runs", 1)[1]
    positions = [runs.index(name) for name in newest_first]
    assert positions == sorted(positions)

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "status-page.png"
    screenshot.unlink(missing_ok=True)
    shot = chromium(f"--screenshot={screenshot}", "--window-size=1280,900", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_a_status_token_closes_the_page(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "status-token"
    token_file.write_text("first-status-token\nsecond-status-token\n")
    document = {
        "namespace": namespace, "jobImage": "hooksync-job:test",
        "publicURL": "http://127.0.0.1:9", "github": {"apiURL": "http://127.0.0.1:9"},
        "targets": [{
            "name": "closed", "provider": "github", "repo": "acme/closed",
            "cloneURL": "http://127.0.0.1:9/x.git", "branch": "main", "path": "deploy",
            "namespace": "closed", "serviceAccount": "hooksync-closed",
        }],
    }  # fmt: skip
    receiver = ReceiverProcess(
        tmp_path, document, cluster.kubeconfig, args=["--no-background"],
        env={"HOOKSYNC_STATUS_TOKEN_FILE": str(token_file)},
    )  # fmt: skip
    with receiver:
        base = receiver.url

        def get(path: str, token: str | None = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.get(f"{base}{path}", headers=headers, timeout=30)

        refused = get("/")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "acme/closed" not in refused.text
        assert get("/", "wrong-token").status_code == 401
        for token in ("first-status-token", "second-status-token"):
            page = get("/", token)
            assert page.status_code == 200 and "acme/closed" in page.text
            assert "default-src 'none'" in page.headers["content-security-policy"]
        # Probes and scrapes stay open: the token guards the page only.
        assert get("/healthz").status_code == 200
        assert get("/metrics").status_code == 200


def test_run_links_open_under_every_configured_key(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "link-keys"
    key_file.write_text("the-new-link-key\nthe-old-link-key\n")
    document = {
        "namespace": namespace, "jobImage": "hooksync-job:test",
        "publicURL": "http://127.0.0.1:9", "github": {"apiURL": "http://127.0.0.1:9"},
        "targets": [{
            "name": "linked", "provider": "github", "repo": "acme/linked",
            "cloneURL": "http://127.0.0.1:9/x.git", "branch": "main", "path": "deploy",
            "namespace": "linked", "serviceAccount": "hooksync-linked",
        }],
    }  # fmt: skip
    receiver = ReceiverProcess(
        tmp_path, document, cluster.kubeconfig, args=["--no-background"],
        env={"HOOKSYNC_LINK_KEY_FILE": str(key_file)},
    )  # fmt: skip
    job = "hooksync-linked-apply-6113728"
    with receiver:

        def run_page(key: str) -> httpx.Response:
            url = f"{receiver.url}/runs/{job}"
            return httpx.get(url, params={"sig": sign_run(key, job)}, timeout=30)

        # A link either key signed passes the check and finds no such run; another key's
        # link is refused before anything is looked up.
        answers = {key: run_page(key) for key in ("the-new-link-key", "the-old-link-key")}
        for key, answer in answers.items():
            assert answer.status_code == 404, (key, answer.text)
            assert "run not found" in answer.text
        refused = run_page("a-key-never-configured")
        assert refused.status_code == 403
        for answer in [*answers.values(), refused]:
            assert "default-src 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["cache-control"] == "no-store"
