"""The preview's per-object diffs travel through the Job's log and come back intact."""

from __future__ import annotations

from hooksync import diffs
from hooksync.diffs import ObjectDiff, ObjectOutcome
from hooksync.jsontext import dump_json


def _line(diff: ObjectDiff) -> str:
    return dump_json({"time": "t", "msg": "would change"} | diff.log_fields()).decode()


def test_diffs_come_back_from_log_lines_in_order_skipping_other_lines() -> None:
    web = ObjectDiff("Deployment/web", "change", "--- live\n+++ desired\n-a\n+b\n")
    old = ObjectDiff("ConfigMap/old", "prune")
    lines = ['{"msg": "fetched"}', _line(web), "not json object-diff", _line(old), "[1]"]
    assert diffs.from_log(lines) == [web, old]


def test_a_later_line_for_the_same_object_wins() -> None:
    first = ObjectDiff("ConfigMap/a", "create", "+x\n")
    second = ObjectDiff("ConfigMap/a", "change", "+y\n")
    assert diffs.from_log([_line(first), _line(second)]) == [second]


def test_malformed_entries_are_skipped() -> None:
    bad = [
        '{"event": "object-diff", "object": 3, "would": "change"}',
        '{"event": "object-diff", "object": "A/b", "would": "explode"}',
        '{"event": "object-diff", "object": "A/b", "would": "change", "diff": []}',
    ]
    assert diffs.from_log(bad) == []


def test_long_text_is_cut_and_marked() -> None:
    text = "+" + "x" * (diffs.TEXT_LIMIT * 2)
    fields = ObjectDiff("ConfigMap/big", "change", text).log_fields()
    assert len(fields["diff"]) <= diffs.TEXT_LIMIT
    assert fields["diff"].endswith(diffs.CUT_MARK)
    assert diffs.cut("short") == "short"


def test_apply_outcomes_come_back_from_log_lines_and_diffs_ignore_them() -> None:
    web = ObjectOutcome("Deployment/web", "configured", True, "-  replicas: 3\n+  replicas: 1\n")
    old = ObjectOutcome("Service/old", "pruned")
    lines = [
        '{"msg": "fetched"}',
        dump_json(web.log_fields()).decode(),
        dump_json(old.log_fields()).decode(),
        '{"event": "object-outcome", "object": "A/b", "outcome": "would"}',
        '{"event": "object-outcome", "object": "A/b", "outcome": "created", "drifted": "yes"}',
    ]
    assert diffs.outcomes_from_log(lines) == [web, old]
    assert diffs.from_log(lines) == []
