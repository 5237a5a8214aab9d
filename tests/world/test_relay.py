"""The relay pods use on kind to reach this machine's Git server and Git-host stand-in."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from world.gitserver import GitServer, basic_auth, isolated_git_env
from world.relay import Relay

TOKEN = "relay-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "srv", token=TOKEN) as srv:
        yield srv


def test_git_clones_through_the_relay(server: GitServer, tmp_path: Path) -> None:
    repo = server.create_repo("acme/shop")
    sha = repo.commit({"deploy/app.yaml": "kind: ConfigMap\n"}, "add app")
    relay = Relay("127.0.0.1", server.port)
    address = relay.start()
    try:
        assert address == f"127.0.0.1:{relay.port}" and relay.port != server.port
        env = isolated_git_env(tmp_path / "home")
        clone = tmp_path / "clone"
        auth = f"http.extraHeader=Authorization: {basic_auth(TOKEN)}"
        subprocess.run(
            ["git", "-c", auth, "clone", "--quiet", f"http://{address}/acme/shop.git", str(clone)],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=clone, env=env, capture_output=True, text=True
        )
        assert head.stdout.strip() == sha
        assert (clone / "deploy" / "app.yaml").read_text() == "kind: ConfigMap\n"
    finally:
        relay.stop()


def test_a_half_closed_request_still_gets_its_answer() -> None:
    """The client ends its side first (shutdown write): the answer must still come back."""
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        relay = Relay("127.0.0.1", upstream.getsockname()[1])
        address = relay.start()
        try:
            client = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            client.sendall(b"ping")
            client.shutdown(socket.SHUT_WR)
            accepted, _ = upstream.accept()
            with accepted:
                accepted.settimeout(5)
                received = b""
                while chunk := accepted.recv(100):
                    received += chunk
                accepted.sendall(received.upper())
            answer = b""
            while chunk := client.recv(100):
                answer += chunk
            client.close()
            assert (received, answer) == (b"ping", b"PING"), address
        finally:
            relay.stop()


def test_stop_closes_the_port_and_open_connections() -> None:
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        relay = Relay("127.0.0.1", upstream.getsockname()[1])
        relay.start()
        client = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        accepted, _ = upstream.accept()
        relay.stop()
        with client, accepted:
            assert client.recv(10) == b""  # the relay closed its side
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", relay.port), timeout=5).close()
