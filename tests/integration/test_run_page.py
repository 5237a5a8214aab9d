"""The run page in a real browser: headless Chromium opens the signed run links the Git host
got for a push and for a pull request's preview (`world.runpage`), and finds each object's
diff coloured line by line, the apply's outcome per object, the log as readable lines, and
no Secret value anywhere. A screenshot lands in test-artifacts/run-page.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from world.cluster import LocalCluster
from world.runpage import CHROMIUM, SECRET_VALUES, RunPages, chromium, push_then_preview, screenshot
from world.stack import DeliveryStack

pytestmark = pytest.mark.cluster

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install -y chromium`")
    return CHROMIUM


@pytest.fixture(scope="module")
def pages(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunPages]:
    with DeliveryStack(cluster, tmp_path_factory.mktemp("run-page"), target="runpage") as stack:
        yield push_then_preview(stack)


class Spans(HTMLParser):
    """The text of every classed span of a serialised DOM, as (class, text), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[str, str]] = []
        self.tags: set[str] = set()
        self.text: list[str] = []
        self._open: list[int] = []  # indices into `spans` of the spans still open

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "span":
            self._open.append(len(self.spans))
            self.spans.append((dict(attrs).get("class") or "", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._open:
            cls, text = self.spans[self._open[-1]]
            self.spans[self._open[-1]] = (cls, text + data)

    def classed(self, cls: str) -> list[str]:
        return [text.rstrip("\n") for c, text in self.spans if c == cls]


def dom_of(url: str) -> tuple[Spans, str]:
    dumped = chromium("--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    spans = Spans()
    spans.feed(dumped.stdout)
    return spans, dumped.stdout


def test_the_preview_page_shows_each_diff_coloured_in_chromium(
    browser: str, pages: RunPages
) -> None:
    spans, dom = dom_of(pages.preview_url)
    text = "".join(spans.text)
    assert "converged" not in text
    assert "with a dry run: nothing was changed" in text

    # Each object's verdict, and its diff line by line, each line classed for its colour.
    assert "would create 1, would change 3, unchanged 0, would prune 1" in text
    assert spans.classed("would change") == ["would change"] * 3, text[-4000:]
    assert spans.classed("would create") == ["would create"]  # ConfigMap/flags
    assert spans.classed("would prune") == ["would prune"]  # Service/web
    assert "-  replicas: 1" in spans.classed("del")
    assert "+  replicas: 3" in spans.classed("add")
    assert "-  greeting: hello" in spans.classed("del")
    assert "+  greeting: bonjour" in spans.classed("add")
    assert "+  new-checkout: 'on'" in spans.classed("add")
    assert "+  password: (hidden, changed)" in spans.classed("add")
    assert any(line.startswith("@@ ") for line in spans.classed("hunk"))
    assert "--- Deployment/web (live)" in spans.classed("file")
    # Fields that another manager or the server writes are not part of it.
    diff_text = " ".join(spans.classed("ctx") + spans.classed("add") + spans.classed("del"))
    for left_out in ("status", "managedFields", "resourceVersion", "progressDeadlineSeconds"):
        assert left_out not in diff_text, left_out

    # The log: one readable line each, never the JSON.
    assert "fetch" in spans.classed("step") and "preview" in spans.classed("step")
    assert '"msg"' not in dom and "&quot;msg&quot;" not in dom

    for value in SECRET_VALUES:
        assert value not in dom
    assert not {"script", "img"} & spans.tags

    ARTIFACTS.mkdir(exist_ok=True)
    picture = ARTIFACTS / "run-page.png"
    screenshot(pages.preview_url, picture)
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_apply_page_shows_each_objects_outcome_in_chromium(
    browser: str, pages: RunPages
) -> None:
    spans, dom = dom_of(pages.apply_url)
    created = spans.classed("outcome created")
    assert len(created) == 4, spans.spans
    assert "converged" in "".join(spans.text)
    for value in SECRET_VALUES:
        assert value not in dom
