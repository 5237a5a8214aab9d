"""A corpus of hostile requests replayed against the real receiver process over raw HTTP.

The pure core has property tests (tests/unit/test_hostile_input.py); this sends the same kind
of input through everything in front of it too: the HTTP parser, Starlette's routing, the
bounded body reader, verification, parsing, routing and the JSON answers. Requests are written
byte by byte on a socket, so a header can be sent twice, be missing, or hold bytes no HTTP
library would let through.

The corpus is deterministic: handcrafted cases (each with the answer it must get) plus cases
drawn from a seeded random generator (which may get any documented answer). Signed cases are
signed with the configured secret, so they get past verification and test the parser.

Whatever arrives, the receiver answers only as documented (200, 400, 401, 405, 413, 415), each
4xx as JSON {"error": "<one line>"}, never 500, never a reset (except a close after a 413), and
no Job is created.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import random
import select
import socket
import string
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from world.cluster import LocalCluster
from world.receiver import ReceiverProcess
from world.webhooks import (
    GITHUB_SECRET,
    GITLAB_TOKEN,
    RECEIVER_ENV,
    github_pull_request_payload,
    github_push_payload,
    github_signature,
    gitlab_merge_request_payload,
    gitlab_push_payload,
    receiver_config,
)
from world.webhooks import (
    standard_webhook_signature as standard_signature,
)

pytestmark = pytest.mark.cluster

SEED = 20260417
MAX_BODY_BYTES = 64 * 1024
GITHUB_REPO = "acme/shop"
GITLAB_REPO = "acme/lab"
SHA = "a" * 40
OTHER_SHA = "b" * 40

ALLOWED = frozenset({200, 400, 401, 405, 413, 415})
RESET = "reset"  # the connection was closed or reset before a whole answer arrived
Header = tuple[str | bytes, str | bytes]


@dataclass(frozen=True)
class Hostile:
    """One request, written as raw HTTP/1.1; `expect` is None for generated cases."""

    name: str
    category: str
    path: str
    body: bytes = b""
    headers: tuple[Header, ...] = ()
    method: str = "POST"
    expect: frozenset[int | str] | None = None
    chunked: bool = False
    content_length: bool = True  # add a Content-Length (unless chunked or already given)
    oversize: bool = False  # a close (or reset) after the 413 is allowed
    host: bool = True  # send a Host header first

    def encode(self, port: int) -> tuple[bytes, bytes]:
        """The request head and the body bytes to send after it."""
        headers: list[Header] = [("Host", f"127.0.0.1:{port}")] if self.host else []
        headers += self.headers
        given = {_text(name).lower() for name, _ in self.headers}
        if self.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        elif (
            self.content_length
            and "content-length" not in given
            and (self.body or self.method not in ("GET", "HEAD"))
        ):
            headers.append(("Content-Length", str(len(self.body))))
        headers.append(("Connection", "close"))
        head = f"{self.method} {self.path} HTTP/1.1\r\n".encode()
        for name, value in headers:
            head += _bytes(name) + b": " + _bytes(value) + b"\r\n"
        body = self.body
        if self.chunked:
            pieces = [body[i : i + 8192] for i in range(0, len(body), 8192)]
            body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        return head + b"\r\n", body


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def expect(*answers: int | str) -> frozenset[int | str]:
    return frozenset(answers)


# --- signed headers ---------------------------------------------------------------------------


def github_headers(
    body: bytes, event: str = "push", content_type: str = "application/json", signed: bool = True
) -> list[Header]:
    headers: list[Header] = [
        ("Content-Type", content_type),
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", str(uuid.UUID(int=random.Random(body).getrandbits(128)))),
        ("User-Agent", "GitHub-Hookshot/hostile"),
    ]
    if signed:
        headers.append(("X-Hub-Signature-256", github_signature(body)))
    return headers


def gitlab_token_headers(
    body: bytes, event: str = "Push Hook", content_type: str = "application/json"
) -> list[Header]:
    return [
        ("Content-Type", content_type),
        ("X-Gitlab-Event", event),
        ("X-Gitlab-Token", GITLAB_TOKEN),
        ("X-Gitlab-Event-UUID", str(uuid.UUID(int=random.Random(body).getrandbits(128)))),
    ]


def gitlab_signed_headers(
    body: bytes, event: str = "Push Hook", timestamp: int | None = None
) -> list[Header]:
    message_id = f"msg_{hashlib.sha256(body).hexdigest()[:20]}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return [
        ("Content-Type", "application/json"),
        ("X-Gitlab-Event", event),
        ("webhook-id", message_id),
        ("webhook-timestamp", str(timestamp)),
        ("webhook-signature", standard_signature(message_id, timestamp, body)),
    ]


def without(headers: list[Header], name: str) -> tuple[Header, ...]:
    return tuple(h for h in headers if _text(h[0]).lower() != name.lower())


def doubled(
    headers: list[Header], name: str, second: str | bytes | None = None
) -> tuple[Header, ...]:
    """`headers` with header `name` sent twice (the second time with `second`, if given)."""
    result: list[Header] = []
    for key, value in headers:
        result.append((key, value))
        if _text(key).lower() == name.lower():
            result.append((key, value if second is None else second))
    return tuple(result)


# --- payloads ---------------------------------------------------------------------------------


def github_push(ref: str = "refs/heads/other", **changes: Any) -> dict[str, Any]:
    """A GitHub push to acme/shop; by default to a branch no target follows (answer 200)."""
    return github_push_payload(GITHUB_REPO, SHA, ref=ref, before=OTHER_SHA) | changes


def github_pull_request(base: str = "other", head_sha: str = SHA) -> dict[str, Any]:
    return github_pull_request_payload(
        GITHUB_REPO, head_sha, number=3, base_branch=base, base_sha=OTHER_SHA
    )


def gitlab_push(ref: str = "refs/heads/other", **changes: Any) -> dict[str, Any]:
    return gitlab_push_payload(GITLAB_REPO, SHA, ref=ref, before=OTHER_SHA) | changes


def gitlab_merge_request(target_branch: str = "other", last_commit: str = SHA) -> dict[str, Any]:
    return gitlab_merge_request_payload(
        GITLAB_REPO, last_commit, iid=4, target_branch=target_branch
    )


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def signed_github(
    name: str, category: str, body: bytes, answers: frozenset[int | str] | None, **kw: Any
) -> Hostile:
    event = kw.pop("event", "push")
    return Hostile(
        name, category, "/hooks/github", body, tuple(github_headers(body, event)), expect=answers
    )


def signed_gitlab(
    name: str, category: str, body: bytes, answers: frozenset[int | str] | None
) -> Hostile:
    return Hostile(
        name, category, "/hooks/gitlab", body, tuple(gitlab_token_headers(body)), expect=answers
    )


# --- the handcrafted corpus -------------------------------------------------------------------

# Ref names Git forbids, or that a shell, a path or a URL would read as more than data.
# Each maps to the answers it may get: 400 when Git forbids it, 200 when it is a valid ref
# that no target follows (it then stays data: it reaches no shell, path or Job).
HOSTILE_REFS: dict[str, frozenset[int | str]] = {
    "refs/heads/../main": expect(400),
    "refs/heads/main/../../x": expect(400),
    "refs/heads/main..x": expect(400),
    "refs/heads/ma in": expect(400),
    "refs/heads/main ": expect(400),
    " refs/heads/main": expect(400),
    "refs/heads/~main": expect(400),
    "refs/heads/main~1": expect(400),
    "refs/heads/main^": expect(400),
    "refs/heads/main^{}": expect(400),
    "refs/heads/a:b": expect(400),
    "refs/heads/main\x00": expect(400),
    "refs/heads/\x00": expect(400),
    "refs/heads/main\n": expect(400),
    "refs/heads/main\r\nX-Injected: 1": expect(400),
    "refs/heads/main\t": expect(400),
    "refs/heads/main\x7f": expect(400),
    "refs/heads/.hidden": expect(400),
    "refs/heads/main.lock": expect(400),
    "refs/heads/a//b": expect(400),
    "refs/heads/main/": expect(400),
    "refs/heads/main.": expect(400),
    "refs/heads/@{-1}": expect(400),
    "refs/heads/*": expect(400),
    "refs/heads/a?b": expect(400),
    "refs/heads/[x]": expect(400),
    "refs/heads/a\\b": expect(400),
    "refs/heads/" + "a" * 300: expect(400),
    "refs/heads/": expect(400),
    "": expect(400),
    "../../etc/passwd": expect(400),
    "/refs/heads/main": expect(400),
    "-refs/heads/main": expect(400),
    "refs/heads/;rm -rf /": expect(400),
    "refs/heads/a && b": expect(400),
    "refs/heads/-rf": expect(400),
    "refs/tags/": expect(400),
    # Valid ref names that are shell or path syntax: data only, and nobody follows them.
    "refs/heads/$(id)": expect(200),
    "refs/heads/`id`": expect(200),
    "refs/heads/;reboot": expect(200),
    "refs/heads/a|b": expect(200),
    "refs/heads/a&b": expect(200),
    "refs/heads/$HOME": expect(200),
    "refs/heads/>out": expect(200),
    "refs/heads/<in": expect(200),
    "refs/heads/main'": expect(200),
    'refs/heads/"main"': expect(200),
    "refs/heads/{a,b}": expect(200),
    "refs/heads/%2e%2e": expect(200),
    "refs/heads/main\u202e": expect(200),
    "refs/heads/ma\ud800in": expect(400),  # a lone surrogate escape is not Unicode: not JSON
    "refs/heads/é": expect(200),
    "refs/notes/commits": expect(200),
    "refs/tags/$(reboot)": expect(200),
}

HOSTILE_SHAS = ["A" * 40, "a" * 39, "a" * 41, "g" * 40, "a" * 40 + "\n", "$(id)", "", "../" * 14]
HOSTILE_REPOS = ["acme/shop/../x", "acme/shop; rm -rf /", "../acme/shop", "acme/sh op", "acme"]
HOSTILE_DELIVERIES = ["../../x", "a b", "x" * 200, "-leading", "é", "a;b"]


def ref_cases() -> Iterator[Hostile]:
    for index, (ref, answers) in enumerate(HOSTILE_REFS.items()):
        yield signed_github(f"github push ref #{index}", "ref", dumps(github_push(ref)), answers)
        yield signed_gitlab(f"gitlab push ref #{index}", "ref", dumps(gitlab_push(ref)), answers)
        if ref.startswith("refs/heads/") and len(ref) > len("refs/heads/"):
            branch = ref.removeprefix("refs/heads/")
            yield signed_github(
                f"github PR base #{index}", "ref", dumps(github_pull_request(base=branch)),
                answers, event="pull_request",
            )  # fmt: skip
            yield signed_gitlab(
                f"gitlab MR target #{index}", "ref", dumps(gitlab_merge_request(branch)), answers
            )


def field_cases() -> Iterator[Hostile]:
    """Signed payloads for the followed branch with one field hostile: always 400."""
    main = "refs/heads/main"
    for index, sha in enumerate(HOSTILE_SHAS):
        yield signed_github(
            f"github after #{index}", "field", dumps(github_push(main, after=sha)), expect(400)
        )
        yield signed_gitlab(
            f"gitlab before #{index}", "field", dumps(gitlab_push(main, before=sha)), expect(400)
        )
        yield signed_github(
            f"github PR head sha #{index}", "field",
            dumps(github_pull_request("main", head_sha=sha)), expect(400), event="pull_request",
        )  # fmt: skip
    for index, repo in enumerate(HOSTILE_REPOS):
        push = github_push(main, repository={"full_name": repo})
        yield signed_github(f"github repo #{index}", "field", dumps(push), expect(400))
        lab = gitlab_push(main, project={"path_with_namespace": repo})
        yield signed_gitlab(f"gitlab project #{index}", "field", dumps(lab), expect(400))
    for index, commits in enumerate([{"id": SHA}, [SHA], [{"id": 7}], [None], "x"]):
        push = github_push(main, commits=commits)
        yield signed_github(f"github commits #{index}", "field", dumps(push), expect(400))
    deleted: list[Any] = ["yes", 1, [], {}]
    for index, value in enumerate(deleted):
        push = github_push(main, deleted=value)
        yield signed_github(f"github deleted #{index}", "field", dumps(push), expect(400))
    for index, delivery in enumerate(HOSTILE_DELIVERIES):
        body = dumps(github_push())
        headers = [(k, delivery if _text(k) == "X-GitHub-Delivery" else v)
                   for k, v in github_headers(body)]  # fmt: skip
        yield Hostile(f"github delivery id #{index}", "field", "/hooks/github", body,
                      tuple(headers), expect=expect(400))  # fmt: skip


def header_cases() -> Iterator[Hostile]:
    """Every relevant header missing, doubled, or doubled with another value."""
    gh_body = dumps(github_push())
    gh = github_headers(gh_body)
    github = "/hooks/github"
    missing = {
        "X-Hub-Signature-256": expect(401),
        "X-GitHub-Event": expect(400),
        "X-GitHub-Delivery": expect(200),
        "Content-Type": expect(415),
        "User-Agent": expect(200),
    }
    for name, answers in missing.items():
        yield Hostile(f"github without {name}", "header", github, gh_body, without(gh, name),
                      expect=answers)  # fmt: skip
    yield Hostile("github without Host", "header", github, gh_body, tuple(gh), host=False,
                  expect=expect(200))  # fmt: skip
    yield Hostile(
        "github without Content-Length or body", "header", github, b"", tuple(gh),
        content_length=False, expect=expect(401),
    )  # fmt: skip
    wrong_signature = github_signature(gh_body, "not-the-secret")
    twice = {
        ("X-Hub-Signature-256", None): expect(401),
        ("X-Hub-Signature-256", wrong_signature): expect(401),
        ("X-Hub-Signature-256", "sha256=" + "0" * 64): expect(401),
        ("X-GitHub-Event", None): expect(200),
        ("X-GitHub-Event", "ping"): expect(200, 400),
        ("X-GitHub-Delivery", None): expect(200),
        ("X-GitHub-Delivery", "../x"): expect(200, 400),
        ("Content-Type", None): expect(200),
        ("Content-Type", "text/plain"): expect(200, 415),
        ("Content-Length", None): expect(400),
        ("Content-Length", "1"): expect(400),
        ("Host", None): expect(200, 400),
    }
    for (name, second), answers in twice.items():
        headers = list(gh)
        if name == "Content-Length":
            headers.append(("Content-Length", str(len(gh_body))))
        yield Hostile(
            f"github {name} twice" + (f" ({second[:12]})" if second else ""), "header", github,
            gh_body, doubled(headers, name, second) if name != "Host" else
            (("Host", "evil.example"), *headers), expect=answers,
        )  # fmt: skip
    yield Hostile(
        "github only the SHA-1 signature", "header", github, gh_body,
        (*without(gh, "X-Hub-Signature-256"),
         ("X-Hub-Signature", "sha1=" + hmac.new(GITHUB_SECRET.encode(), gh_body,
                                                  hashlib.sha1).hexdigest())),
        expect=expect(401),
    )  # fmt: skip
    yield Hostile(
        "github Content-Length and chunked", "header", github, gh_body,
        (*gh, ("Content-Length", str(len(gh_body)))), chunked=True, expect=expect(400),
    )  # fmt: skip
    yield Hostile(
        "github Content-Length not a number", "header", github, gh_body,
        (*gh, ("Content-Length", "12abc")), expect=expect(400),
    )  # fmt: skip
    yield Hostile(
        "github negative Content-Length", "header", github, b"",
        (*gh, ("Content-Length", "-1")), expect=expect(400),
    )  # fmt: skip
    yield Hostile(
        "github NUL in a header", "header", github, gh_body,
        (*without(gh, "X-GitHub-Event"), ("X-GitHub-Event", b"pu\x00sh")), expect=expect(400),
    )  # fmt: skip
    yield Hostile(
        "github high bytes in the signature", "header", github, gh_body,
        (*without(gh, "X-Hub-Signature-256"), ("X-Hub-Signature-256", b"sha256=\xff\xfe")),
        expect=expect(401),
    )  # fmt: skip
    yield Hostile(
        "github lower-case header names", "header", github, gh_body,
        tuple((_text(k).lower(), v) for k, v in gh), expect=expect(200),
    )  # fmt: skip
    yield Hostile("github chunked body", "header", github, gh_body, tuple(gh), chunked=True,
                  expect=expect(200))  # fmt: skip

    gitlab = "/hooks/gitlab"
    gl_body = dumps(gitlab_push())
    gl = gitlab_token_headers(gl_body)
    gl_missing = {
        "X-Gitlab-Token": expect(401),
        "X-Gitlab-Event": expect(200),
        "X-Gitlab-Event-UUID": expect(200),
        "Content-Type": expect(200),
    }
    for name, answers in gl_missing.items():
        yield Hostile(f"gitlab without {name}", "header", gitlab, gl_body, without(gl, name),
                      expect=answers)  # fmt: skip
    gl_twice = {
        ("X-Gitlab-Token", None): expect(401),
        ("X-Gitlab-Token", "wrong"): expect(401),
        ("X-Gitlab-Event", "Merge Request Hook"): expect(200),
        ("X-Gitlab-Event-UUID", None): expect(200),
        ("Content-Type", "text/plain"): expect(200, 415),
        ("Content-Length", None): expect(400),
    }
    for (name, second), answers in gl_twice.items():
        headers = list(gl)
        if name == "Content-Length":
            headers.append(("Content-Length", str(len(gl_body))))
        yield Hostile(
            f"gitlab {name} twice" + (f" ({second[:12]})" if second else ""), "header", gitlab,
            gl_body, doubled(headers, name, second), expect=answers,
        )  # fmt: skip
    yield Hostile("gitlab token with high bytes", "header", gitlab, gl_body,
                  (*without(gl, "X-Gitlab-Token"), ("X-Gitlab-Token", b"\xff\xfe")),
                  expect=expect(401))  # fmt: skip

    # Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature).
    signed = gitlab_signed_headers(gl_body)
    yield Hostile("gitlab signed", "header", gitlab, gl_body, tuple(signed), expect=expect(200))
    for name in ("webhook-id", "webhook-timestamp"):
        yield Hostile(f"gitlab signed without {name}", "header", gitlab, gl_body,
                      without(signed, name), expect=expect(401))  # fmt: skip
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        yield Hostile(f"gitlab signed {name} twice", "header", gitlab, gl_body,
                      doubled(signed, name), expect=expect(401))  # fmt: skip
    now = int(time.time())
    for label, stamp in (("stale", now - 3600), ("future", now + 3600), ("zero", 0)):
        yield Hostile(f"gitlab signature {label}", "header", gitlab, gl_body,
                      tuple(gitlab_signed_headers(gl_body, timestamp=stamp)),
                      expect=expect(401))  # fmt: skip
    for label, value in (
        ("not numeric", "soon"),
        ("negative", "-5"),
        ("huge", "9" * 40),
    ):
        headers = [(k, value if _text(k) == "webhook-timestamp" else v) for k, v in signed]
        yield Hostile(f"gitlab timestamp {label}", "header", gitlab, gl_body, tuple(headers),
                      expect=expect(401))  # fmt: skip
    for label, value in (
        ("other body", standard_signature("msg_x", now, b"{}")),
        ("v1a only", "v1a," + base64.b64encode(b"x" * 64).decode()),
        ("not base64", "v1,!!!"),
        ("empty", ""),
    ):
        headers = [(k, value if _text(k) == "webhook-signature" else v) for k, v in signed]
        yield Hostile(f"gitlab signature {label}", "header", gitlab, gl_body, tuple(headers),
                      expect=expect(401))  # fmt: skip


def ping_cases() -> Iterator[Hostile]:
    """GitHub's ping echoes `zen` back: whatever it holds must still make a JSON answer."""
    zens: list[Any] = ["\x00\n\r", "</script>", "é" * 500, "\u2028\ufeff", None]
    for index, zen in enumerate(zens):
        body = dumps({"zen": zen, "hook_id": 1})
        yield signed_github(f"github ping zen #{index}", "ping", body, expect(200), event="ping")
    # A lone surrogate escape is valid JSON syntax but no Unicode text (RFC 8259 section 8.2):
    # the strict decoder refuses it.
    body = dumps({"zen": "\ud800", "hook_id": 1})
    yield signed_github("github ping zen lone surrogate", "ping", body, expect(400), event="ping")
    for index, doc in enumerate([{"zen": 1}, {"hook_id": "1"}, {"hook_id": True}, []]):
        yield signed_github(f"github bad ping #{index}", "ping", dumps(doc), expect(400),
                            event="ping")  # fmt: skip


def method_cases() -> Iterator[Hostile]:
    for path in ("/hooks/github", "/hooks/gitlab"):
        for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
            yield Hostile(f"{method} {path}", "method", path, method=method, expect=expect(405))
        body = dumps(github_push())
        yield Hostile(f"GET {path} with a signed body", "method", path, body,
                      tuple(github_headers(body)), method="GET",
                      content_length=True, expect=expect(405))  # fmt: skip
        yield Hostile(f"made-up method on {path}", "method", path, method="FETCHALL",
                      expect=expect(400, 405))  # fmt: skip


def content_type_cases() -> Iterator[Hostile]:
    body = dumps(github_push())
    github_types = {
        "text/plain": expect(415),
        "application/xml": expect(415),
        "multipart/form-data; boundary=x": expect(415),
        "": expect(415),
        "application/jsonp": expect(415),
        "json": expect(415),
        "*/*": expect(415),
        "application/json\u00e9": expect(415),
        "application/x-www-form-urlencoded": expect(400),
        "Application/JSON; charset=utf-8": expect(200),
    }
    for index, (content_type, answers) in enumerate(github_types.items()):
        yield Hostile(f"github content type #{index}", "content-type", "/hooks/github", body,
                      tuple(github_headers(body, content_type=content_type)),
                      expect=answers)  # fmt: skip
    form = b"payload=" + body.replace(b" ", b"+")
    yield Hostile("github form with a non-JSON payload", "content-type", "/hooks/github",
                  b"payload=%7Bnope", tuple(github_headers(b"payload=%7Bnope",
                  content_type="application/x-www-form-urlencoded")),
                  expect=expect(400))  # fmt: skip
    yield Hostile("github form payload twice", "content-type", "/hooks/github",
                  form + b"&" + form, tuple(github_headers(form + b"&" + form,
                  content_type="application/x-www-form-urlencoded")),
                  expect=expect(400))  # fmt: skip
    yield Hostile("github form with bad percent-escapes", "content-type", "/hooks/github",
                  b"payload=%ff%fe", tuple(github_headers(b"payload=%ff%fe",
                  content_type="application/x-www-form-urlencoded")),
                  expect=expect(400))  # fmt: skip
    gl_body = dumps(gitlab_push())
    # (An empty Content-Type counts as none, which GitLab's parser reads as JSON.)
    for index, content_type in enumerate(
        ["text/plain", "application/x-www-form-urlencoded", "application/xml", "text/json"]
    ):
        yield Hostile(f"gitlab content type #{index}", "content-type", "/hooks/gitlab", gl_body,
                      tuple(gitlab_token_headers(gl_body, content_type=content_type)),
                      expect=expect(415))  # fmt: skip


def size_and_nesting_cases() -> Iterator[Hostile]:
    big = b'{"ref": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    over = b"[" + b"1," * (MAX_BODY_BYTES // 2) + b"1]"
    for path, headers in (
        ("/hooks/github", github_headers), ("/hooks/gitlab", gitlab_token_headers)
    ):  # fmt: skip
        where = path.rsplit("/", 1)[1]
        yield Hostile(f"{where} 4 MiB body", "size", path, big, tuple(headers(big)),
                      oversize=True, expect=expect(413, RESET))  # fmt: skip
        yield Hostile(f"{where} 4 MiB chunked", "size", path, big, tuple(headers(big)),
                      chunked=True, oversize=True, expect=expect(413, RESET))  # fmt: skip
        yield Hostile(f"{where} one byte over the limit", "size", path, over[: MAX_BODY_BYTES + 1],
                      tuple(headers(over[: MAX_BODY_BYTES + 1])), oversize=True,
                      expect=expect(413, RESET))  # fmt: skip
        yield Hostile(f"{where} 10 GB announced, nothing sent", "size", path, b"",
                      (*headers(b""), ("Content-Length", str(10 * 1024**3))), oversize=True,
                      expect=expect(413, RESET))  # fmt: skip
        yield Hostile(f"{where} 1 MiB with Expect: 100-continue", "size", path, big[: 1 << 20],
                      (*headers(big[: 1 << 20]), ("Expect", "100-continue")), oversize=True,
                      expect=expect(413, RESET))  # fmt: skip
        nested_over = b"[" * (MAX_BODY_BYTES) + b"]" * MAX_BODY_BYTES
        yield Hostile(f"{where} nested past the limit", "size", path, nested_over,
                      tuple(headers(nested_over)), oversize=True,
                      expect=expect(413, RESET))  # fmt: skip
        exactly = b" " * (MAX_BODY_BYTES - 2) + b"{}"
        yield Hostile(f"{where} exactly the limit", "size", path, exactly,
                      tuple(headers(exactly)), expect=expect(200, 400))  # fmt: skip

    # Deep nesting under the size limit, signed, so it reaches the JSON decoder.
    for depth in (1025, 30_000):
        for opener, closer in (("[", "]"), ('{"a":', "}")):
            if depth * (len(opener) + 1) > MAX_BODY_BYTES - 64:
                continue
            text = (opener * depth + "1" + closer * depth).encode()
            yield signed_github(f"github nested {depth} {opener}", "nesting", text, expect(400))
            yield signed_gitlab(f"gitlab nested {depth} {opener}", "nesting", text, expect(400))
    deep_ref = dumps(github_push(ref=json.loads("[" * 70 + "]" * 70)))
    yield signed_github("github ref nested 70 deep", "nesting", deep_ref, expect(400))
    # The push object itself is the first level.
    pushed = dumps(github_push(extra="DEEP"))
    too_deep = pushed.replace(b'"DEEP"', b"[" * 1024 + b"]" * 1024)
    yield signed_github("github 1025 levels", "nesting", too_deep, expect(400))
    at_limit = pushed.replace(b'"DEEP"', b"[" * 1023 + b"]" * 1023)
    yield signed_github("github 1024 levels is fine", "nesting", at_limit, expect(200))


def encoding_cases() -> Iterator[Hostile]:
    """Signed bodies that are not UTF-8 JSON."""
    text = json.dumps(github_push(ref="refs/heads/café"), ensure_ascii=False)
    gl_text = json.dumps(gitlab_push(ref="refs/heads/café"), ensure_ascii=False)
    variants = {
        "latin-1": (text.encode("latin-1"), gl_text.encode("latin-1"), expect(400)),
        "UTF-16": (text.encode("utf-16"), gl_text.encode("utf-16"), expect(400)),
        "UTF-32": (text.encode("utf-32"), gl_text.encode("utf-32"), expect(400)),
        "UTF-8 BOM": (
            b"\xef\xbb\xbf" + text.encode(),
            b"\xef\xbb\xbf" + gl_text.encode(),
            expect(400),
        ),
        "overlong slash": (
            text.encode().replace(b"/", b"\xc0\xaf", 1),
            gl_text.encode().replace(b"/", b"\xc0\xaf", 1),
            expect(400),
        ),
        "encoded surrogate": (
            text.encode().replace(b"caf", b"\xed\xa0\x80", 1),
            gl_text.encode().replace(b"caf", b"\xed\xa0\x80", 1),
            expect(400),
        ),
        "truncated sequence": (
            text.encode()[:-3] + b"\xe2\x82",
            gl_text.encode()[:-3] + b"\xe2",
            expect(400),
        ),
        "NUL bytes": (
            text.encode().replace(b" ", b"\x00"),
            gl_text.encode().replace(b" ", b"\x00"),
            expect(400),
        ),
        "UTF-8 (valid)": (text.encode(), gl_text.encode(), expect(200)),
    }
    for label, (gh_body, gl_body, answers) in variants.items():
        yield signed_github(f"github {label}", "encoding", gh_body, answers)
        yield signed_gitlab(f"gitlab {label}", "encoding", gl_body, answers)


# --- the generated corpus ---------------------------------------------------------------------

NASTY_PIECES = [
    *string.printable, "\x00", "..", "~", "^", ":", "@{", " ", "$(", "`", ";", "|", "&",
    "../", "\u202e", "é", "\ud800", "\\", "*", "?", "[", "\n",
]  # fmt: skip
EVENTS = ["push", "pull_request", "ping", "issues", "", "Push Hook", "x" * 300, "pu\tsh"]
CONTENT_TYPES = [
    "application/json", "application/x-www-form-urlencoded", "text/plain", "", "application/json;",
]  # fmt: skip


def nasty_text(rng: random.Random, limit: int = 24) -> str:
    return "".join(rng.choice(NASTY_PIECES) for _ in range(rng.randint(0, limit)))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 7 if depth < 4 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, 1.5, -0.0, 10**30, 1e308])
    if kind in (3, 4):
        return nasty_text(rng)
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [
        "ref",
        "after",
        "before",
        "repository",
        "full_name",
        "object_kind",
        "project",
        "pull_request",
        "commits",
        "zen",
        "action",
        "number",
        "deleted",
        "path_with_namespace",
    ]
    return {
        rng.choice([*keys, nasty_text(rng, 8)]): random_json(rng, depth + 1)
        for _ in range(rng.randint(0, 5))
    }


def set_path(doc: dict[str, Any], path: list[str], value: Any) -> None:
    node = doc
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


# Fields every push needs: whatever random value replaces one, the push is no longer valid for
# the followed branch (optional fields such as commits or head_commit could be valid as null).
GITHUB_FIELDS = [["ref"], ["after"], ["before"], ["repository", "full_name"], ["repository"]]
GITLAB_FIELDS = [["ref"], ["after"], ["before"], ["project", "path_with_namespace"], ["project"]]


def generated_cases(rng: random.Random) -> Iterator[Hostile]:
    paths = ["/hooks/github", "/hooks/gitlab"]
    # Arbitrary bytes, signed or not, under any event and content type.
    for index in range(40):
        path = paths[index % 2]
        body = rng.randbytes(rng.choice([0, 1, 17, 300, 4096]))
        event = rng.choice(EVENTS)
        content_type = rng.choice(CONTENT_TYPES)
        if path.endswith("github"):
            headers = github_headers(body, event, content_type, signed=rng.random() < 0.7)
        else:
            headers = gitlab_token_headers(body, event, content_type)
            if rng.random() < 0.3:
                headers = list(without(headers, "X-Gitlab-Token"))
        yield Hostile(f"random bytes #{index}", "random-bytes", path, body, tuple(headers))
    # Arbitrary JSON, signed.
    for index in range(40):
        path = paths[index % 2]
        body = json.dumps(random_json(rng), ensure_ascii=rng.random() < 0.5).encode(
            "utf-8", "surrogatepass"
        )
        if path.endswith("github"):
            event = rng.choice(["push", "pull_request", "ping"])
            headers = github_headers(body, event)
        else:
            headers = gitlab_token_headers(body, rng.choice(["Push Hook", "Merge Request Hook"]))
        yield Hostile(f"random JSON #{index}", "random-json", path, body, tuple(headers))
    # Real payloads for the followed branch with one field replaced by something hostile.
    for index in range(40):
        if index % 2 == 0:
            doc = github_push("refs/heads/main")
            set_path(doc, rng.choice(GITHUB_FIELDS), random_json(rng, 2))
            body = dumps(doc)
            headers = github_headers(body)
            path = paths[0]
        else:
            doc = gitlab_push("refs/heads/main")
            set_path(doc, rng.choice(GITLAB_FIELDS), random_json(rng, 2))
            body = dumps(doc)
            headers = gitlab_token_headers(body)
            path = paths[1]
        yield Hostile(f"mutated payload #{index}", "mutated", path, body, tuple(headers))
    # Header soup: the right headers, some dropped, some doubled, some replaced by junk.
    for index in range(24):
        path = paths[index % 2]
        body = dumps(github_push() if path.endswith("github") else gitlab_push())
        base = github_headers(body) if path.endswith("github") else gitlab_token_headers(body)
        soup: list[Header] = []
        for key, value in base:
            roll = rng.random()
            if roll < 0.2:
                continue
            if roll < 0.35:
                soup += [(key, value), (key, value)]
            elif roll < 0.5:
                junk = "".join(c for c in nasty_text(rng) if c.isprintable() and c != "\ud800")
                soup.append((key, junk))
            else:
                soup.append((key, value))
        rng.shuffle(soup)
        yield Hostile(f"header soup #{index}", "header-soup", path, body, tuple(soup))


def corpus() -> list[Hostile]:
    handcrafted = [
        *ref_cases(),
        *field_cases(),
        *header_cases(),
        *ping_cases(),
        *method_cases(),
        *content_type_cases(),
        *size_and_nesting_cases(),
        *encoding_cases(),
    ]
    return handcrafted + list(generated_cases(random.Random(SEED)))


# --- sending ----------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def exchange(port: int, request: Hostile, timeout: float = 30.0) -> Answer:
    """Send `request` on a fresh connection and read one answer.

    The body goes out in pieces, and sending stops as soon as an answer is waiting, the way a
    client that watches for an early 413 behaves; a reset before a whole answer is RESET.
    """
    head, body = request.encode(port)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(head)
            for start in range(0, len(body), 64 * 1024):
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(body[start : start + 64 * 1024])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading; its answer may still be waiting
        response = http.client.HTTPResponse(sock, method=request.method)
        try:
            response.begin()
            data = response.read()
        except (ConnectionError, http.client.HTTPException, TimeoutError):
            return Answer(RESET)
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)


def check(request: Hostile, answer: Answer) -> str | None:
    """What is wrong with `answer` to `request`, or None."""
    status = answer.status
    if status == RESET:
        if request.oversize:
            return None
        return "the connection was reset without an answer"
    if status not in ALLOWED:
        return f"answered {status}: {answer.body[:300]!r}"
    if request.expect is not None and status not in request.expect:
        return (
            f"answered {status}, expected {sorted(map(str, request.expect))}: {answer.body[:300]!r}"
        )
    content_type = answer.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        return f"{status} with content type {content_type!r}: {answer.body[:200]!r}"
    if request.method == "HEAD":
        return None
    try:
        doc = json.loads(answer.body)
    except ValueError:
        return f"{status} body is not JSON: {answer.body[:200]!r}"
    if isinstance(status, int) and 400 <= status < 500:
        if not (isinstance(doc, dict) and set(doc) == {"error"} and isinstance(doc["error"], str)):
            return f"{status} body is not {{'error': str}}: {doc!r}"
        reason = doc["error"]
        if not reason or "\n" in reason or "\r" in reason or len(reason) > 500:
            return f"{status} reason is not one short line: {reason!r}"
    if status == 405 and "POST" not in answer.headers.get("allow", ""):
        return f"405 without Allow: POST: {answer.headers}"
    if status == 200 and not (isinstance(doc, dict) and doc.get("status") in ("ping", "ignored")):
        return f"200 that is neither a ping nor ignored: {doc!r}"
    return None


def table(results: list[tuple[Hostile, Answer]]) -> str:
    """Answers counted per category, as a plain-text table."""
    answers = sorted({str(a.status) for _, a in results})
    categories = sorted({r.category for r, _ in results})
    counts = Counter((r.category, str(a.status)) for r, a in results)
    width = max(len(c) for c in [*categories, "category", "total"])
    lines = [f"{'category':<{width}} " + " ".join(f"{s:>6}" for s in answers) + "  total"]
    for category in categories:
        row = [counts[(category, s)] for s in answers]
        lines.append(
            f"{category:<{width}} " + " ".join(f"{n:>6}" for n in row) + f"  {sum(row):>5}"
        )
    totals = [sum(counts[(c, s)] for c in categories) for s in answers]
    lines.append(
        f"{'total':<{width}} " + " ".join(f"{n:>6}" for n in totals) + f"  {sum(totals):>5}"
    )
    return "\n".join(lines)


# --- the test ---------------------------------------------------------------------------------


@pytest.fixture
def receiver(
    cluster: LocalCluster, kube: client.ApiClient, tmp_path: Path
) -> Iterator[tuple[ReceiverProcess, str]]:
    """A receiver whose Jobs would go to a fresh namespace of the session cluster."""
    namespace = f"t-hostile-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    target = {
        "branch": "main",
        "path": "deploy",
        "cloneURL": "http://127.0.0.1:9/x.git",
        "serviceAccount": "hooksync-test-absent",
        "previews": True,
    }
    config = receiver_config(
        namespace,
        [
            {**target, "name": "shop", "provider": "github", "repo": GITHUB_REPO,
             "namespace": "hostile-shop"},
            {**target, "name": "lab", "provider": "gitlab", "repo": GITLAB_REPO,
             "namespace": "hostile-lab"},
        ],
        maxBodyBytes=MAX_BODY_BYTES,
    )  # fmt: skip
    process = ReceiverProcess(tmp_path, config, cluster.kubeconfig, env=RECEIVER_ENV)
    process.start()
    try:
        yield process, namespace
    finally:
        process.stop()
        # A Job created by mistake carries the status finalizer, which nothing would lift now.
        batch = client.BatchV1Api(kube)
        for job in batch.list_namespaced_job(namespace).items:
            batch.patch_namespaced_job(
                job.metadata.name, namespace, {"metadata": {"finalizers": None}}
            )
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace, propagation_policy="Background")


def test_hostile_requests_get_only_documented_answers_and_start_nothing(
    receiver: tuple[ReceiverProcess, str], kube: client.ApiClient
) -> None:
    process, namespace = receiver
    requests = corpus()
    assert len(requests) >= 200, len(requests)
    assert len({r.name for r in requests}) == len(requests), "case names must be unique"

    results = [(request, exchange(process.port, request)) for request in requests]
    counts = table(results)
    print(f"\n{len(results)} hostile requests, answers per category:\n{counts}")

    problems = [f"{r.name}: {why}" for r, a in results if (why := check(r, a)) is not None]
    summary = f"answers:\n{counts}\nreceiver log ends:\n{process.log()[-3000:]}"
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problems)\n" + summary

    # Nothing started: no Job in the receiver's namespace.
    jobs = client.BatchV1Api(kube).list_namespaced_job(namespace).items
    assert [j.metadata.name for j in jobs] == [], summary
    # The process took it all in its stride: alive, healthy, no unhandled exception.
    assert process.process is not None and process.process.poll() is None
    assert httpx.get(f"{process.url}/healthz", timeout=10).status_code == 200
    log = process.log()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, summary
