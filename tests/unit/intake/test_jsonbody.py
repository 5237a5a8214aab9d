"""Reading a body lazily (simdjson) gives exactly what reading it whole (orjson) gives: the
same event for every documented payload and for arbitrary ones, and the same reason for
every refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.intake import jsonbody
from receiver.intake.errors import MalformedDelivery
from receiver.intake.events import parse_github, parse_gitlab
from receiver.intake.jsonbody import JSONBody
from tests.unit.intake.test_events import GITHUB_FIXTURES, GITLAB_FIXTURES, fixture, fixture_bytes

JSON = "application/json"
DELIVERY = "d-1"
SHA = "a" * 40


def outcome(call: Any, *args: Any) -> Any:
    """The event a parser returns, or the reason it refuses with."""
    try:
        return call(*args)
    except MalformedDelivery as exc:
        return ("refused", exc.reason)


def both_ways(monkeypatch: pytest.MonkeyPatch, call: Any, *args: Any) -> tuple[Any, Any]:
    """(lazily, whole): the outcome with simdjson reading first, and with orjson alone."""
    lazily = outcome(call, *args)
    with monkeypatch.context() as patched:
        patched.setattr(jsonbody, "read_lazily", lambda data: None)
        whole = outcome(call, *args)
    return lazily, whole


@pytest.mark.parametrize(("name", "event"), GITHUB_FIXTURES.items())
def test_every_github_fixture_reads_the_same_both_ways(
    monkeypatch: pytest.MonkeyPatch, name: str, event: str
) -> None:
    body = fixture_bytes(name)
    assert jsonbody.read_lazily(body) is not None  # the lazy reading is the one under test
    lazily, whole = both_ways(monkeypatch, parse_github, event, body, JSON, DELIVERY)
    assert lazily == whole
    assert not isinstance(lazily, tuple)


@pytest.mark.parametrize(("name", "header"), GITLAB_FIXTURES.items())
def test_every_gitlab_fixture_reads_the_same_both_ways(
    monkeypatch: pytest.MonkeyPatch, name: str, header: str
) -> None:
    body = fixture_bytes(name)
    assert jsonbody.read_lazily(body) is not None
    lazily, whole = both_ways(monkeypatch, parse_gitlab, body, header, DELIVERY)
    assert lazily == whole
    assert not isinstance(lazily, tuple)


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf{}",  # a byte order mark: simdjson would skip it
        b'{"ref": 123456789012345678901234567890}',  # past 64 bits: orjson reads a float
        b"[" * 1025 + b"]" * 1025,  # deeper than simdjson goes
        b'{"a": NaN}',
        b'{"ref": "\\ud800"}',
        b'{"ref": "x"} trailing',
        b"[]",
        b'"push"',
        b"",
    ],
)
def test_documents_simdjson_refuses_are_decided_by_orjson(
    monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    assert jsonbody.read_lazily(body) is None
    lazily, whole = both_ways(monkeypatch, parse_github, "push", body, JSON, DELIVERY)
    assert lazily == whole


def test_only_the_fields_a_shape_names_are_copied() -> None:
    document = JSONBody(
        b'{"ref": "r", "big": {"x": [1, 2, 3]}, "repository": {"full_name": "a/b", "id": 7},'
        b' "commits": [{"id": "c", "message": "m"}, 5, [1]], "after": {"deep": 1}}',
        "body",
    )
    shape = {"ref": None, "repository": {"full_name": None}, "commits": [{"id": None}],
             "after": None, "missing": None}  # fmt: skip
    assert document.fields(shape) == {
        "ref": "r",
        "repository": {"full_name": "a/b"},
        # Items that are not objects keep their kind, which is all a reason names of them.
        "commits": [{"id": "c"}, 5, []],
        "after": {},
    }


def test_a_repeated_key_reads_its_first_value() -> None:
    # RFC 8259 leaves repeated names to the parser. Bodies are signed by the Git host,
    # which never repeats one; hooksync reads the first.
    assert JSONBody(b'{"ref": "a", "ref": "b"}', "body").fields({"ref": None}) == {"ref": "a"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from([SHA, "refs/heads/main", "acme/shop", "opened"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["id", "full_name", "sha", "ref", "repo", "x"]), children,
                      max_size=3),
    max_leaves=12,
)  # fmt: skip
PUSH_KEYS = ["ref", "before", "after", "deleted", "repository", "commits", "x"]
PR_KEYS = ["action", "number", "repository", "pull_request", "zen", "hook_id"]
GITLAB_KEYS = ["object_kind", "event_name", "ref", "before", "after", "project", "commits",
               "object_attributes"]  # fmt: skip


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=st.dictionaries(st.sampled_from(PUSH_KEYS + PR_KEYS), json_values, max_size=8),
    event=st.sampled_from(["push", "pull_request", "ping"]),
)
def test_arbitrary_github_documents_read_the_same_both_ways(
    monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any], event: str
) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    lazily, whole = both_ways(monkeypatch, parse_github, event, body, JSON, DELIVERY)
    assert lazily == whole


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(list(GITHUB_FIXTURES)),
    changes=st.dictionaries(st.sampled_from(PUSH_KEYS + PR_KEYS), json_values, max_size=2),
    dropped=st.lists(st.sampled_from(PUSH_KEYS + PR_KEYS), max_size=2),
)
def test_documented_payloads_with_fields_changed_read_the_same_both_ways(
    monkeypatch: pytest.MonkeyPatch, name: str, changes: dict[str, Any], dropped: list[str]
) -> None:
    doc = {**fixture(name), **changes}
    for key in dropped:
        doc.pop(key, None)
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    event = GITHUB_FIXTURES[name]
    lazily, whole = both_ways(monkeypatch, parse_github, event, body, JSON, DELIVERY)
    assert lazily == whole


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=st.dictionaries(st.sampled_from(GITLAB_KEYS), json_values, max_size=8),
    header=st.sampled_from(["Push Hook", "Merge Request Hook", "Tag Push Hook"]),
)
def test_arbitrary_gitlab_documents_read_the_same_both_ways(
    monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any], header: str
) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    lazily, whole = both_ways(monkeypatch, parse_gitlab, body, header, DELIVERY)
    assert lazily == whole


def test_parsers_read_through_the_lazy_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the tests above compare is the copy: had the parsers read around it, breaking
    # it would change nothing.
    doc = fixture("github/push/payload.json")
    body = json.dumps(doc).encode()
    with monkeypatch.context() as patched:
        patched.setattr(jsonbody, "_copy_object", lambda node, shape: {})
        assert outcome(parse_github, "push", body, JSON, DELIVERY) == ("refused", "ref: missing")
