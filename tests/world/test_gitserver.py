"""Tests for the test world's Git server, driven by the real git client over HTTP."""

from __future__ import annotations

import gzip
import http.client
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from world.gitserver import GitServer, RequestRecord, basic_auth, isolated_git_env

TOKEN = "s3cret-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "srv", token=TOKEN) as srv:
        yield srv


@pytest.fixture
def client_env(tmp_path: Path) -> dict[str, str]:
    return isolated_git_env(tmp_path / "client-home")


def git(
    env: dict[str, str],
    *args: str,
    cwd: Path | None = None,
    token: str | None = None,
    username: str = "x-access-token",
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    auth = ["-c", f"http.extraHeader=Authorization: {basic_auth(token, username)}"] if token else []
    proc = subprocess.run(
        ["git", *auth, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc


def http_call(
    method: str, url: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=5)
    try:
        conn.request(method, f"{parts.path}?{parts.query}", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def init_client(env: dict[str, str], path: Path, url: str) -> Path:
    git(env, "init", "--quiet", str(path))
    git(env, "remote", "add", "origin", url, cwd=path)
    return path


@pytest.mark.parametrize("username", ["x-access-token", "oauth2"])
def test_clone_with_token_sees_committed_file(
    server: GitServer, client_env: dict[str, str], tmp_path: Path, username: str
) -> None:
    repo = server.create_repo("acme/shop")
    sha = repo.commit({"deploy/app.yaml": "kind: ConfigMap\n"}, "add app")

    dest = tmp_path / "clone"
    git(client_env, "clone", "--quiet", repo.url, str(dest), token=TOKEN, username=username)

    assert (dest / "deploy" / "app.yaml").read_text() == "kind: ConfigMap\n"
    assert git(client_env, "rev-parse", "HEAD", cwd=dest).stdout.strip() == sha
    assert repo.url == f"http://127.0.0.1:{server.port}/acme/shop.git"
    assert RequestRecord("GET", "/acme/shop.git/info/refs?service=git-upload-pack", 200) in (
        server.requests
    )


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
def test_clone_without_valid_token_fails_with_auth_error(
    server: GitServer, client_env: dict[str, str], tmp_path: Path, token: str | None
) -> None:
    repo = server.create_repo("shop")
    repo.commit({"a.txt": "a"}, "init")

    dest = tmp_path / "clone"
    proc = git(client_env, "clone", repo.url, str(dest), token=token, check=False)

    assert proc.returncode != 0
    # Without a credential helper git asks for a username, which prompts-disabled refuses.
    assert "Authentication failed" in proc.stderr or "could not read Username" in proc.stderr
    assert not (dest / "a.txt").exists()
    assert {r.status for r in server.requests} == {401}


def test_shallow_fetch_of_branch(
    server: GitServer, client_env: dict[str, str], tmp_path: Path
) -> None:
    repo = server.create_repo("shop")
    repo.commit({"a.txt": "1"}, "one")
    repo.commit({"a.txt": "2"}, "two", branch="release")
    tip = repo.commit({"a.txt": "3"}, "three", branch="release")

    client = init_client(client_env, tmp_path / "client", repo.url)
    git(
        client_env, "fetch", "--quiet", "--depth", "1", "origin", "release", cwd=client, token=TOKEN
    )

    assert git(client_env, "rev-parse", "FETCH_HEAD", cwd=client).stdout.strip() == tip
    count = git(client_env, "rev-list", "--count", "FETCH_HEAD", cwd=client).stdout.strip()
    assert count == "1"
    assert (client / ".git" / "shallow").read_text().strip() == tip


@pytest.mark.parametrize("protocol", ["0", "2"])
def test_fetch_exact_sha_that_is_not_a_branch_tip(
    server: GitServer, client_env: dict[str, str], tmp_path: Path, protocol: str
) -> None:
    repo = server.create_repo("shop")
    older = repo.commit({"a.txt": "old"}, "old")
    repo.commit({"a.txt": "new"}, "new")

    client = init_client(client_env, tmp_path / "client", repo.url)
    git(
        client_env,
        *("-c", f"protocol.version={protocol}"),
        *("fetch", "--quiet", "--depth", "1", "origin", older),
        cwd=client,
        token=TOKEN,
    )

    assert git(client_env, "rev-parse", "FETCH_HEAD", cwd=client).stdout.strip() == older
    assert git(client_env, "show", f"{older}:a.txt", cwd=client).stdout == "old"


def test_protocol_v2_is_negotiated(server: GitServer) -> None:
    repo = server.create_repo("shop")
    status, headers, body = http_call(
        "GET",
        f"{repo.url}/info/refs?service=git-upload-pack",
        {"Authorization": basic_auth(TOKEN), "Git-Protocol": "version=2"},
    )

    assert status == 200
    assert headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
    assert b"version 2\n" in body
    assert b"fetch=" in body


def test_gzip_request_body_is_decoded(server: GitServer) -> None:
    repo = server.create_repo("shop")
    sha = repo.commit({"a.txt": "zipped"}, "init")
    # A protocol v0 stateless-rpc negotiation: one want, then done.
    want = f"want {sha}\n".encode()
    payload = b"%04x%b0000" % (len(want) + 4, want) + b"0009done\n"
    status, _, body = http_call(
        "POST",
        f"{repo.url}/git-upload-pack",
        {
            "Authorization": basic_auth(TOKEN),
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Encoding": "gzip",
        },
        gzip.compress(payload),
    )

    assert status == 200
    assert body.startswith(b"0008NAK\n")
    assert b"PACK" in body


def test_unavailable_server_answers_503_and_git_fails(
    server: GitServer, client_env: dict[str, str]
) -> None:
    repo = server.create_repo("shop")
    sha = repo.commit({"a.txt": "a"}, "init")

    server.set_available(False)
    status, _, _ = http_call("GET", f"{repo.url}/info/refs?service=git-upload-pack", {})
    assert status == 503
    down = git(client_env, "ls-remote", repo.url, token=TOKEN, check=False)
    assert down.returncode != 0
    assert "503" in down.stderr

    server.set_available(True)
    up = git(client_env, "ls-remote", repo.url, "refs/heads/main", token=TOKEN)
    assert up.stdout.split() == [sha, "refs/heads/main"]


def test_push_over_http_with_token(
    server: GitServer, client_env: dict[str, str], tmp_path: Path
) -> None:
    repo = server.create_repo("shop")
    repo.commit({"a.txt": "a"}, "init")
    dest = tmp_path / "clone"
    git(client_env, "clone", "--quiet", repo.url, str(dest), token=TOKEN)
    # Bigger than git's 1 MiB http.postBuffer, so the push body arrives chunked.
    blob = os.urandom(3 * 1024 * 1024)
    (dest / "big.bin").write_bytes(blob)
    git(client_env, "add", "big.bin", cwd=dest)
    git(client_env, "commit", "--quiet", "-m", "big", cwd=dest)
    pushed = git(client_env, "rev-parse", "HEAD", cwd=dest).stdout.strip()

    git(client_env, "push", "--quiet", "origin", "main", cwd=dest, token=TOKEN)

    assert repo.head("main") == pushed
    stored = subprocess.run(
        ["git", "cat-file", "blob", f"{pushed}:big.bin"],
        cwd=repo.bare_path,
        env=client_env,
        capture_output=True,
        check=True,
    ).stdout
    assert stored == blob
    # The helper keeps working on top of commits that arrived over HTTP.
    after = repo.commit({"b.txt": "b"}, "after push")
    parent = git(client_env, "rev-parse", f"{after}^", cwd=repo.bare_path).stdout.strip()
    assert parent == pushed


def test_repo_helper_branches_and_deletes(server: GitServer, client_env: dict[str, str]) -> None:
    repo = server.create_repo("shop")
    base = repo.commit({"keep.txt": "k", "drop.txt": "d", "bin/data": b"\x00\x01"}, "base")
    feature = repo.commit({"drop.txt": None, "new.txt": "n"}, "feature work", branch="feature")

    def tree(rev: str) -> list[str]:
        out = git(client_env, "ls-tree", "-r", "--name-only", rev, cwd=repo.bare_path)
        return out.stdout.split()

    assert git(client_env, "rev-parse", f"{feature}^", cwd=repo.bare_path).stdout.strip() == base
    assert tree(feature) == ["bin/data", "keep.txt", "new.txt"]
    assert repo.head("main") == base
    assert repo.head("feature") == feature
    author = git(client_env, "log", "-1", "--format=%an <%ae>|%cn", feature, cwd=repo.bare_path)
    assert author.stdout.strip() == "Test World <world@hooksync.test>|Test World"

    repo.delete_branch("feature")
    with pytest.raises(KeyError):
        repo.head("feature")
    with pytest.raises(KeyError):
        repo.delete_branch("feature")
    # A deleted branch recreated later starts again from the default branch.
    again = repo.commit({"x.txt": "x"}, "again", branch="feature")
    assert tree(again) == ["bin/data", "drop.txt", "keep.txt", "x.txt"]


def test_per_repo_token_overrides_server_token(tmp_path: Path, client_env: dict[str, str]) -> None:
    with GitServer(tmp_path / "srv") as srv:
        public = srv.create_repo("public")
        private = srv.create_repo("team/private", token="repo-token")
        public.commit({"a": "a"}, "a")
        private.commit({"b": "b"}, "b")

        assert git(client_env, "ls-remote", public.url).returncode == 0
        assert git(client_env, "ls-remote", private.url, check=False).returncode != 0
        assert git(client_env, "ls-remote", private.url, token=TOKEN, check=False).returncode != 0
        listed = git(client_env, "ls-remote", private.url, "main", token="repo-token").stdout
        assert listed.split()[0] == private.head()


def test_stop_closes_idle_connections_and_port(tmp_path: Path) -> None:
    srv = GitServer(tmp_path / "srv")
    srv.start()
    srv.create_repo("shop")
    port = srv.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/shop.git/info/refs?service=git-upload-pack")
    response = conn.getresponse()
    response.read()
    assert response.status == 200

    started = time.monotonic()
    srv.stop()  # The keep-alive connection above is still open.

    assert time.monotonic() - started < 2
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
    conn.close()


def test_hidden_paths_are_not_served(server: GitServer) -> None:
    server.create_repo("shop")
    status, _, _ = http_call(
        "GET",
        f"{server.base_url}/.work/shop/.git/info/refs?service=git-upload-pack",
        {"Authorization": basic_auth(TOKEN)},
    )
    assert status == 404
