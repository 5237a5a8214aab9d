"""Parsing GitHub and GitLab payloads, the recorded fixtures first, into typed events."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from receiver.intake.errors import MalformedDelivery, UnsupportedContentType
from receiver.intake.events import (
    IgnoredEvent,
    PingEvent,
    PreviewEvent,
    PushEvent,
    parse_github,
    parse_gitlab,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "webhooks"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SHA_A = "a" * 40
SHA_B = "b" * 40

# Each fixture and the header value its source documents (see SOURCES.md there).
GITHUB_FIXTURES = {
    "github/ping/payload.json": "ping",
    "github/push/with-new-branch.payload.json": "push",
    "github/push/payload.json": "push",
    "github/push/with-organization.payload.json": "push",
    "github/pull_request/opened.payload.json": "pull_request",
    "github/pull_request/synchronize.payload.json": "pull_request",
    "github/pull_request/closed.payload.json": "pull_request",
    "github/pull_request/reopened.payload.json": "pull_request",
}
GITLAB_FIXTURES = {
    "gitlab/push.json": "Push Hook",
    "gitlab/tag_push.json": "Tag Push Hook",
    "gitlab/merge_request.json": "Merge Request Hook",
}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(fixture_bytes(name))
    return document


def github(event: str, document: dict[str, Any]) -> Any:
    return parse_github(event, json.dumps(document).encode(), JSON, DELIVERY)


def gitlab(document: dict[str, Any], header: str | None = None) -> Any:
    return parse_gitlab(json.dumps(document).encode(), header, DELIVERY)


def malformed_reason(call: Any, *args: Any) -> str:
    with pytest.raises(MalformedDelivery) as excinfo:
        call(*args)
    assert excinfo.value.status == 400
    return excinfo.value.reason


def test_every_fixture_file_has_a_test() -> None:
    present = {str(path.relative_to(FIXTURES)) for path in FIXTURES.rglob("*.json")}
    # Gitea's fixtures are tested in test_gitea.py.
    present = {name for name in present if not name.startswith("gitea/")}
    assert present == set(GITHUB_FIXTURES) | set(GITLAB_FIXTURES)


# The recorded fixtures


def test_github_ping_fixture() -> None:
    name = "github/ping/payload.json"
    doc = fixture(name)
    event = parse_github("ping", fixture_bytes(name), JSON, DELIVERY)
    assert event == PingEvent(
        provider="github", zen=doc["zen"], hook_id=doc["hook_id"], delivery_id=DELIVERY
    )


def test_github_branch_push_fixture() -> None:
    name = "github/push/with-new-branch.payload.json"
    doc = fixture(name)
    event = parse_github("push", fixture_bytes(name), JSON, DELIVERY)
    assert event == PushEvent(
        provider="github",
        repo=doc["repository"]["full_name"],
        ref=doc["ref"],
        branch=doc["ref"].removeprefix("refs/heads/"),
        after=doc["after"],
        before=doc["before"],
        commits=tuple(commit["id"] for commit in doc["commits"]),
        delivery_id=DELIVERY,
    )
    assert event.branch == "master"


@pytest.mark.parametrize(
    "name", ["github/push/payload.json", "github/push/with-organization.payload.json"]
)
def test_github_tag_deletion_fixtures_are_ignored(name: str) -> None:
    doc = fixture(name)
    event = parse_github("push", fixture_bytes(name), JSON, DELIVERY)
    tag = doc["ref"].removeprefix("refs/tags/")
    assert event == IgnoredEvent(
        f"tag {tag} of {doc['repository']['full_name']} was deleted; nothing to deploy"
    )


@pytest.mark.parametrize(
    "name",
    [
        "github/pull_request/opened.payload.json",
        "github/pull_request/synchronize.payload.json",
        "github/pull_request/reopened.payload.json",
    ],
)
def test_github_pull_request_fixtures_preview_the_head(name: str) -> None:
    doc = fixture(name)
    pull = doc["pull_request"]
    event = parse_github("pull_request", fixture_bytes(name), JSON, DELIVERY)
    assert event == PreviewEvent(
        provider="github",
        repo=doc["repository"]["full_name"],
        base_branch=pull["base"]["ref"],
        head_sha=pull["head"]["sha"],
        head_repo=pull["head"]["repo"]["full_name"],
        number=doc["number"],
        is_fork=False,
        action=doc["action"],
        delivery_id=DELIVERY,
    )


def test_github_closed_pull_request_fixture_is_ignored() -> None:
    name = "github/pull_request/closed.payload.json"
    event = parse_github("pull_request", fixture_bytes(name), JSON, DELIVERY)
    assert event == IgnoredEvent("pull_request action 'closed' needs no preview")


def test_gitlab_push_fixture() -> None:
    name = "gitlab/push.json"
    doc = fixture(name)
    event = parse_gitlab(fixture_bytes(name), GITLAB_FIXTURES[name], DELIVERY)
    assert event == PushEvent(
        provider="gitlab",
        repo=doc["project"]["path_with_namespace"],
        ref=doc["ref"],
        branch=doc["ref"].removeprefix("refs/heads/"),
        after=doc["after"],
        before=doc["before"],
        commits=tuple(commit["id"] for commit in doc["commits"]),
        delivery_id=DELIVERY,
    )


def test_gitlab_tag_push_fixture() -> None:
    name = "gitlab/tag_push.json"
    doc = fixture(name)
    event = parse_gitlab(fixture_bytes(name), GITLAB_FIXTURES[name], DELIVERY)
    assert event == PushEvent(
        provider="gitlab",
        repo=doc["project"]["path_with_namespace"],
        ref=doc["ref"],
        tag=doc["ref"].removeprefix("refs/tags/"),
        after=doc["after"],
        before=doc["before"],
        commits=(),
        delivery_id=DELIVERY,
    )


def test_gitlab_merge_request_fixture() -> None:
    name = "gitlab/merge_request.json"
    doc = fixture(name)
    attributes = doc["object_attributes"]
    event = parse_gitlab(fixture_bytes(name), GITLAB_FIXTURES[name], DELIVERY)
    assert event == PreviewEvent(
        provider="gitlab",
        repo=doc["project"]["path_with_namespace"],
        base_branch=attributes["target_branch"],
        head_sha=attributes["last_commit"]["id"],
        head_repo=attributes["source"]["path_with_namespace"],
        number=attributes["iid"],
        is_fork=False,
        action="open",
        delivery_id=DELIVERY,
    )


# GitHub: content types


@pytest.mark.parametrize("name", sorted(GITHUB_FIXTURES))
def test_github_form_encoded_delivery_parses_like_json(name: str) -> None:
    event_name = GITHUB_FIXTURES[name]
    text = fixture_bytes(name).decode()
    form = urlencode({"payload": text}).encode()
    as_json = parse_github(event_name, fixture_bytes(name), JSON, DELIVERY)
    assert parse_github(event_name, form, FORM, DELIVERY) == as_json


def test_github_content_type_parameters_and_case_are_ignored() -> None:
    name = "github/push/with-new-branch.payload.json"
    event = parse_github("push", fixture_bytes(name), "Application/JSON; charset=utf-8", None)
    assert isinstance(event, PushEvent)
    assert event.delivery_id is None


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "", None])
def test_github_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedContentType) as excinfo:
        parse_github("push", b"{}", content_type, DELIVERY)
    assert excinfo.value.status == 415
    assert "application/json" in excinfo.value.reason


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "text/json", "; x"]
)
def test_gitlab_other_content_types_are_415(content_type: str) -> None:
    name = next(iter(GITLAB_FIXTURES))
    with pytest.raises(UnsupportedContentType) as excinfo:
        parse_gitlab(
            fixture_bytes(name), GITLAB_FIXTURES[name], DELIVERY, content_type=content_type
        )
    assert excinfo.value.status == 415
    assert "application/json" in excinfo.value.reason


@pytest.mark.parametrize("content_type", [None, "", "application/json; charset=utf-8"])
def test_gitlab_json_or_no_content_type_reads_as_json(content_type: str | None) -> None:
    name = next(iter(GITLAB_FIXTURES))
    expected = parse_gitlab(fixture_bytes(name), GITLAB_FIXTURES[name], DELIVERY)
    event = parse_gitlab(
        fixture_bytes(name), GITLAB_FIXTURES[name], DELIVERY, content_type=content_type
    )
    assert event == expected


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (b"other=1", "form body has no payload field"),
        (b"payload=%7B%7D&payload=%7B%7D", "payload: the form field appears 2 times"),
        (b"payload=%FF", "payload is not UTF-8 once percent-decoded"),
        (b"payload=%5B1%5D", "payload is not a JSON object but a list"),
        (
            b"payload=nope",
            "payload is not valid JSON: invalid literal, expected 'null' (line 1, column 1)",
        ),
    ],
)
def test_github_malformed_form_bodies(form: bytes, expected: str) -> None:
    assert malformed_reason(parse_github, "push", form, FORM, DELIVERY) == expected


# GitHub: events beyond the fixtures


def test_github_unknown_event_is_ignored_without_parsing() -> None:
    event = parse_github("issues", b"not even json", JSON, DELIVERY)
    assert event == IgnoredEvent("GitHub event 'issues' is not one hooksync acts on")


def test_github_missing_event_header_is_malformed() -> None:
    assert malformed_reason(parse_github, "", b"{}", JSON, DELIVERY) == (
        "X-GitHub-Event header is missing"
    )


def test_github_branch_deletion_is_ignored() -> None:
    doc = fixture("github/push/with-new-branch.payload.json")
    doc.update(after="0" * 40, before=doc["after"], deleted=True, commits=[])
    event = github("push", doc)
    assert event == IgnoredEvent(
        "branch master of Codertocat/Hello-World was deleted; nothing to deploy"
    )


def test_github_zero_after_counts_as_deletion_without_the_flag() -> None:
    doc = fixture("github/push/with-new-branch.payload.json")
    doc.update(after="0" * 40)
    del doc["deleted"]
    assert isinstance(github("push", doc), IgnoredEvent)


def test_sha256_repository_zero_after_counts_as_deletion() -> None:
    doc = fixture("gitlab/push.json")
    doc.update(after="0" * 64, before="a" * 64, commits=[])
    assert gitlab(doc) == IgnoredEvent(
        "branch master of mike/diaspora was deleted; nothing to deploy"
    )


def test_github_tag_creation_is_a_tag_push() -> None:
    doc = fixture("github/push/with-new-branch.payload.json")
    doc.update(ref="refs/tags/v1.2.3")
    event = github("push", doc)
    assert isinstance(event, PushEvent)
    assert (event.tag, event.branch, event.after) == ("v1.2.3", None, doc["after"])


def test_github_branch_with_slashes_keeps_them() -> None:
    doc = fixture("github/push/with-new-branch.payload.json")
    doc.update(ref="refs/heads/release/2024.1")
    event = github("push", doc)
    assert isinstance(event, PushEvent)
    assert event.branch == "release/2024.1"


def test_github_push_to_other_ref_namespaces_is_ignored() -> None:
    doc = fixture("github/push/with-new-branch.payload.json")
    doc.update(ref="refs/notes/commits")
    assert github("push", doc) == IgnoredEvent(
        "ref 'refs/notes/commits' is neither a branch nor a tag"
    )


def test_github_fork_pull_request() -> None:
    doc = fixture("github/pull_request/opened.payload.json")
    doc["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
    event = github("pull_request", doc)
    assert isinstance(event, PreviewEvent)
    assert (event.is_fork, event.head_repo) == (True, "mallory/Hello-World")


def test_github_pull_request_from_deleted_fork_counts_as_fork() -> None:
    doc = fixture("github/pull_request/synchronize.payload.json")
    doc["pull_request"]["head"]["repo"] = None
    event = github("pull_request", doc)
    assert isinstance(event, PreviewEvent)
    assert (event.is_fork, event.head_repo) == (True, None)


def test_github_same_repository_in_other_case_is_not_a_fork() -> None:
    doc = fixture("github/pull_request/opened.payload.json")
    doc["pull_request"]["head"]["repo"]["full_name"] = "codertocat/hello-world"
    event = github("pull_request", doc)
    assert isinstance(event, PreviewEvent)
    assert event.is_fork is False


@pytest.mark.parametrize("action", ["labeled", "edited", "ready_for_review", "closed"])
def test_github_pull_request_actions_without_new_code_are_ignored(action: str) -> None:
    doc = fixture("github/pull_request/opened.payload.json")
    doc["action"] = action
    assert github("pull_request", doc) == IgnoredEvent(
        f"pull_request action {action!r} needs no preview"
    )


def test_github_ping_without_zen_or_hook_id() -> None:
    assert github("ping", {}) == PingEvent(provider="github", delivery_id=DELIVERY)


# Malformed input: the reason names the field


def _without(document: dict[str, Any], path: str) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    del node[last]
    return doc


def _with(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    node[last] = value
    return doc


@pytest.mark.parametrize(
    "path",
    [
        "pull_request.head.sha",
        "pull_request.base.ref",
        "pull_request.head",
        "pull_request",
        "number",
        "repository",
        "action",
    ],
)
def test_github_pull_request_missing_field(path: str) -> None:
    doc = _without(fixture("github/pull_request/opened.payload.json"), path)
    assert malformed_reason(github, "pull_request", doc) == f"{path}: missing"


@pytest.mark.parametrize("path", ["ref", "after", "before", "repository.full_name"])
def test_github_push_missing_field(path: str) -> None:
    doc = _without(fixture("github/push/with-new-branch.payload.json"), path)
    assert malformed_reason(github, "push", doc) == f"{path}: missing"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("ref", ["refs/heads/main"], "ref: expected a string, got a list"),
        ("ref", None, "ref: expected a string, got null"),
        ("ref", "", "ref: empty"),
        ("ref", "refs/heads/a..b", "ref: 'refs/heads/a..b' is not a valid Git ref name"),
        ("ref", "refs/heads/x y", "ref: 'refs/heads/x y' is not a valid Git ref name"),
        ("ref", "refs/heads/-x", "ref: 'refs/heads/-x' is not a valid branch ref"),
        ("after", 12345, "after: expected a string, got a number"),
        (
            "after",
            "6113728",
            "after: '6113728' is not a full commit SHA (40 lower-case hex digits)",
        ),
        ("after", "6113728F27AE82C7B1A177C8D03F9E96E0ADF246", None),
        ("after", "g" * 40, None),
        ("before", "0" * 39, None),
        ("deleted", "no", "deleted: expected true or false, got a string"),
        ("commits", {}, "commits: expected a list, got an object"),
        ("commits", ["x"], "commits[0]: expected an object, got a string"),
        ("commits", [{"id": "short"}], None),
        ("repository", "acme/shop", "repository: expected an object, got a string"),
        ("repository.full_name", "acme", None),
        ("repository.full_name", "acme/../shop", None),
        ("repository.full_name", "acme/shop\n", None),
    ],
)
def test_github_push_wrong_value(path: str, value: Any, expected: str | None) -> None:
    doc = _with(fixture("github/push/with-new-branch.payload.json"), path, value)
    reason = malformed_reason(github, "push", doc)
    if expected is None:
        # The exact wording is checked elsewhere; here it must name the field.
        assert reason.startswith(path.split(".")[0])
    else:
        assert reason == expected


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("number", "2", "number: expected a number, got a string"),
        ("number", True, "number: expected a number, got a boolean"),
        ("number", 0, "number: 0 is not a positive number"),
        ("pull_request.head.sha", None, "pull_request.head.sha: expected a string, got null"),
        (
            "pull_request.base.ref",
            "a b",
            "pull_request.base.ref: 'a b' is not a valid Git branch name",
        ),
        ("pull_request.head.repo", [], "pull_request.head.repo: expected an object, got a list"),
        ("action", 1, "action: expected a string, got a number"),
    ],
)
def test_github_pull_request_wrong_value(path: str, value: Any, expected: str) -> None:
    doc = _with(fixture("github/pull_request/opened.payload.json"), path, value)
    assert malformed_reason(github, "pull_request", doc) == expected


def test_github_long_bad_value_is_cut_short_in_the_reason() -> None:
    doc = _with(fixture("github/push/with-new-branch.payload.json"), "after", "x" * 10_000)
    assert len(malformed_reason(github, "push", doc)) < 200


def test_github_invalid_delivery_id_is_malformed() -> None:
    body = fixture_bytes("github/ping/payload.json")
    assert "X-GitHub-Delivery" in malformed_reason(parse_github, "ping", body, JSON, "a b\n")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\xff\xfe{}", "body is not UTF-8"),
        (b'{"ref": "refs/heads/caf\xe9"}', "body is not UTF-8"),
        (b'{"ref": "\xed\xa0\x80"}', "body is not UTF-8"),  # an encoded lone surrogate
        (b"", "body is not valid JSON: Input is a zero-length, empty document (line 1, column 1)"),
        (b'{"ref": ', "body is not valid JSON: unexpected end of data (line 1, column 9)"),
        (b"[]", "body is not a JSON object but a list"),
        (b'"push"', "body is not a JSON object but a string"),
        (b"null", "body is not a JSON object but null"),
    ],
)
def test_body_that_is_not_a_json_object(body: bytes, expected: str) -> None:
    assert malformed_reason(parse_github, "push", body, JSON, DELIVERY) == expected
    assert malformed_reason(parse_gitlab, body, "Push Hook", DELIVERY) == expected


def test_body_that_is_not_utf8_is_refused_whatever_the_event() -> None:
    assert malformed_reason(parse_github, "issues", b'{"a": "\xff"}', JSON, DELIVERY) == (
        "body is not UTF-8"
    )


def test_non_ascii_utf8_in_a_push_is_read_as_such() -> None:
    doc = fixture("github/push/with-new-branch.payload.json")
    doc["ref"] = "refs/heads/café"
    body = json.dumps(doc, ensure_ascii=False).encode()
    assert not body.isascii()
    event = parse_github("push", body, JSON, DELIVERY)
    assert isinstance(event, PushEvent)
    assert event.branch == "café"


# Nesting: refused by rule, never by RecursionError


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b"[" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"ref": "x", "extra": ' + b"[" * 1025 + b"]" * 1025 + b"}",
    ],
)
def test_deep_nesting_is_malformed(body: bytes) -> None:
    expected = "body is nested deeper than 1024 levels"
    assert malformed_reason(parse_github, "push", body, JSON, DELIVERY) == expected
    assert malformed_reason(parse_gitlab, body, None, DELIVERY) == expected


def test_deep_nesting_inside_a_form_payload_is_malformed() -> None:
    form = urlencode({"payload": "[" * 100_000}).encode()
    assert malformed_reason(parse_github, "push", form, FORM, DELIVERY) == (
        "payload is nested deeper than 1024 levels"
    )


def test_nesting_up_to_the_limit_is_accepted() -> None:
    doc = fixture("github/ping/payload.json")
    text = json.dumps(doc)[:-1] + ', "deep": ' + "[" * 1023 + "]" * 1023 + "}"
    event = parse_github("ping", text.encode(), JSON, DELIVERY)
    assert isinstance(event, PingEvent)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    zen = '[{"\\' * 1000
    body = json.dumps({"zen": zen, "hook_id": 1}).encode()
    assert parse_github("ping", body, JSON, DELIVERY) == PingEvent(
        provider="github", zen=zen, hook_id=1, delivery_id=DELIVERY
    )


# GitLab beyond the fixtures


def test_gitlab_system_hook_push_without_object_kind_routes_on_event_name() -> None:
    doc = _without(fixture("gitlab/push.json"), "object_kind")
    del doc["commits"]  # System Hooks send no commits
    event = gitlab(doc, "System Hook")
    assert isinstance(event, PushEvent)
    assert (event.branch, event.after, event.commits) == ("master", doc["after"], ())


def test_gitlab_push_with_neither_kind_field_uses_the_header() -> None:
    doc = _without(_without(fixture("gitlab/push.json"), "object_kind"), "event_name")
    assert isinstance(gitlab(doc, "Push Hook"), PushEvent)
    assert gitlab(doc, "System Hook") == IgnoredEvent(
        "GitLab event 'System Hook' is not one hooksync acts on"
    )


def test_gitlab_merge_request_through_a_system_hook() -> None:
    event = gitlab(fixture("gitlab/merge_request.json"), "System Hook")
    assert isinstance(event, PreviewEvent)


def test_gitlab_branch_deletion_is_ignored() -> None:
    doc = _with(fixture("gitlab/push.json"), "after", "0" * 40)
    assert gitlab(doc) == IgnoredEvent(
        "branch master of mike/diaspora was deleted; nothing to deploy"
    )


def test_gitlab_tag_deletion_is_ignored() -> None:
    doc = _with(fixture("gitlab/tag_push.json"), "after", "0" * 40)
    assert gitlab(doc) == IgnoredEvent(
        "tag v1.0.0 of jsmith/example was deleted; nothing to deploy"
    )


def test_gitlab_nested_group_repository() -> None:
    doc = _with(fixture("gitlab/push.json"), "project.path_with_namespace", "acme/platform/shop")
    event = gitlab(doc)
    assert isinstance(event, PushEvent)
    assert event.repo == "acme/platform/shop"


def test_gitlab_merge_request_update_with_new_commits_is_previewed() -> None:
    doc = _with(fixture("gitlab/merge_request.json"), "object_attributes.action", "update")
    doc["object_attributes"]["oldrev"] = SHA_A
    event = gitlab(doc)
    assert isinstance(event, PreviewEvent)
    assert (event.action, event.head_sha) == (
        "update",
        doc["object_attributes"]["last_commit"]["id"],
    )


def test_gitlab_merge_request_update_without_oldrev_is_ignored() -> None:
    doc = _with(fixture("gitlab/merge_request.json"), "object_attributes.action", "update")
    assert gitlab(doc) == IgnoredEvent("merge request update without new commits needs no preview")


def test_gitlab_merge_request_update_with_bad_oldrev_is_malformed() -> None:
    doc = _with(fixture("gitlab/merge_request.json"), "object_attributes.action", "update")
    doc["object_attributes"]["oldrev"] = "abc"
    assert malformed_reason(gitlab, doc).startswith("object_attributes.oldrev: 'abc'")


@pytest.mark.parametrize("action", ["reopen", "open"])
def test_gitlab_merge_request_open_and_reopen_are_previewed(action: str) -> None:
    doc = _with(fixture("gitlab/merge_request.json"), "object_attributes.action", action)
    event = gitlab(doc)
    assert isinstance(event, PreviewEvent)
    assert event.action == action


@pytest.mark.parametrize("action", ["close", "merge", "approved", "unapproved"])
def test_gitlab_merge_request_other_actions_are_ignored(action: str) -> None:
    doc = _with(fixture("gitlab/merge_request.json"), "object_attributes.action", action)
    assert gitlab(doc) == IgnoredEvent(f"merge request action {action!r} needs no preview")


def test_gitlab_merge_request_from_another_project_is_a_fork() -> None:
    doc = _with(fixture("gitlab/merge_request.json"), "object_attributes.source_project_id", 99)
    event = gitlab(doc)
    assert isinstance(event, PreviewEvent)
    assert event.is_fork is True


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("object_attributes.last_commit", "object_attributes.last_commit: missing"),
        ("object_attributes.target_branch", "object_attributes.target_branch: missing"),
        ("object_attributes.iid", "object_attributes.iid: missing"),
        ("object_attributes.action", "object_attributes.action: missing"),
        ("object_attributes.source_project_id", "object_attributes.source_project_id: missing"),
        ("project", "project: missing"),
    ],
)
def test_gitlab_merge_request_missing_field(path: str, expected: str) -> None:
    doc = _without(fixture("gitlab/merge_request.json"), path)
    assert malformed_reason(gitlab, doc) == expected


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "after",
            "da15608",
            "after: 'da15608' is not a full commit SHA (40 lower-case hex digits)",
        ),
        ("ref", 7, "ref: expected a string, got a number"),
        ("commits", [{"id": None}], "commits[0].id: expected a string, got null"),
        ("project", None, "project: expected an object, got null"),
    ],
)
def test_gitlab_push_wrong_value(path: str, value: Any, expected: str) -> None:
    doc = _with(fixture("gitlab/push.json"), path, value)
    assert malformed_reason(gitlab, doc) == expected


def test_gitlab_object_kind_must_be_a_string() -> None:
    doc = _with(fixture("gitlab/push.json"), "object_kind", ["push"])
    assert malformed_reason(gitlab, doc) == "object_kind: expected a string, got a list"


def test_gitlab_other_kinds_are_ignored() -> None:
    assert gitlab({"object_kind": "note"}, "Note Hook") == IgnoredEvent(
        "GitLab event 'note' is not one hooksync acts on"
    )


def test_parsed_events_are_frozen() -> None:
    event = gitlab(fixture("gitlab/push.json"))
    with pytest.raises(AttributeError):
        event.after = SHA_B
