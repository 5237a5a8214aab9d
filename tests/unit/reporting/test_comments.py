"""The preview comment's text: marker, summary, one collapsible diff per object, and the cut
that keeps it within the host's limit."""

from __future__ import annotations

import re

from hooksync.diffs import ObjectDiff
from receiver.reporting.comments import (
    LIMITS,
    comment_text,
    fence_for,
    is_marked,
    marker,
    object_block,
)

SHA = "a1b2c3d" + "0" * 33
URL = "https://hooks.example/runs/hooksync-shop-preview-a1b2c3d?sig=abc"
CHANGE = ObjectDiff(
    "ConfigMap/web", "change", "--- live\n+++ merged\n@@ -1 +1 @@\n-greeting: a\n+greeting: b\n"
)


def test_the_marker_names_the_target_and_is_found_again_only_for_it() -> None:
    text = comment_text("shop", SHA, "would change 1", [CHANGE], URL, LIMITS["github"])
    assert text.startswith("<!-- hooksync-preview target=shop -->\n")
    assert is_marked(text, "shop")
    assert not is_marked(text, "shop-2") and not is_marked(text, "sho")
    # A marker quoted further down (someone's reply) does not make a comment ours.
    assert not is_marked("Look at this:\n" + marker("shop"), "shop")


def test_the_comment_holds_the_summary_a_collapsible_diff_and_the_run_link() -> None:
    diffs = [CHANGE, ObjectDiff("Service/web", "prune"), ObjectDiff("Deployment/web", "unchanged")]
    text = comment_text("shop", SHA, "would create 0, change 1, prune 1", diffs, URL, 65_536)
    assert "`a1b2c3d`" in text and "would create 0, change 1, prune 1" in text
    assert "<details><summary><code>ConfigMap/web</code> would change</summary>" in text
    assert "```diff\n--- live\n+++ merged\n@@ -1 +1 @@\n-greeting: a\n+greeting: b\n```" in text
    assert "<code>Service/web</code> would prune" in text
    assert "Deployment/web" not in text and "1 unchanged object not shown." in text
    assert f"[Run page]({URL})" in text


def test_a_diff_holding_backticks_cannot_close_its_block() -> None:
    hostile = ObjectDiff("ConfigMap/x", "create", "+a: |\n+  ```\n+  ````\n+</details>\n")
    block = object_block(hostile)
    assert fence_for(hostile.text) == "`````"
    fences = re.findall(r"^`{3,}(?:diff)?$", block, flags=re.MULTILINE)
    assert fences == ["`````diff", "`````"]
    # The object name is escaped where it is HTML.
    assert "&lt;b&gt;" in object_block(ObjectDiff("ConfigMap/<b>", "prune"))


def test_a_comment_too_long_for_the_host_drops_whole_objects_and_links_the_run_page() -> None:
    diffs = [
        ObjectDiff(f"ConfigMap/c{n}", "change", "".join(f"+line {i}\n" for i in range(400)))
        for n in range(40)
    ]
    text = comment_text("shop", SHA, "would change 40", diffs, URL, LIMITS["github"])
    assert len(text) <= 65_536
    shown = text.count("<details>")
    assert 0 < shown < 40
    assert text.count("</details>") == shown  # no section cut in half
    assert f"{40 - shown} more objects: see the [run page]({URL})." in text
    # Every section that is shown is whole; the next one would not have fit.
    assert f"ConfigMap/c{shown - 1}</code>" in text and f"ConfigMap/c{shown}</code>" not in text
    whole = comment_text("shop", SHA, "would change 40", diffs, URL, LIMITS["gitlab"])
    assert whole.count("<details>") == 40 and "more objects" not in whole


def test_a_limit_smaller_than_the_summary_still_keeps_the_marker_first() -> None:
    text = comment_text("shop", SHA, "x" * 500, [CHANGE], URL, 200)
    assert len(text) <= 200 and is_marked(text, "shop")


def test_no_diffs_logged_says_so() -> None:
    text = comment_text("shop", SHA, "would create 0, change 0, prune 0", [], None, 65_536)
    assert "logged no per-object changes" in text and "Run page" not in text
