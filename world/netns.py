"""The real node's network: a network namespace of its own, joined to this machine by a veth pair.

Pod traffic stays inside the namespace (its bridge, its iptables); what leaves it goes through
the veth to the host-side address. There the loopback services `expose()` names (the API
server) are reached through a DNAT rule on the host-side interface that maps HOST_ADDRESS:PORT
to 127.0.0.1:PORT, with route_localnet set on that interface only; the end-to-end scenario's
relays (world/relay.py) listen on HOST_ADDRESS itself.
`destroy()` removes the namespace, the veth and every rule it added.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

NETNS_ROOT = Path("/run/netns")
# One /30 per node out of this range; the third octet is picked free at creation.
LINK_RANGE = ipaddress.ip_network("10.251.0.0/16")
LOCK_FILE = Path("/run/hooksync/link-addresses.lock")


class NetworkError(RuntimeError):
    """A namespace, link, address or rule could not be set up; the message names the command."""


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetworkError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout}")
    return result.stdout


@contextlib.contextmanager
def _address_lock() -> Iterator[None]:
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def link_addresses(used: set[int]) -> tuple[int, str, str]:
    """Pure: the first free third octet in LINK_RANGE and its host-side and node-side addresses."""
    base = LINK_RANGE.network_address
    for octet in range(1, 255):
        if octet not in used:
            host = ipaddress.ip_address(int(base) + octet * 256 + 1)
            return octet, str(host), str(host + 1)
    raise NetworkError(f"no free /30 left in {LINK_RANGE}: delete stale hooksync-* namespaces")


def _used_octets() -> set[int]:
    used: set[int] = set()
    for line in _run("ip", "-4", "-o", "addr", "show").splitlines():
        for word in line.split():
            if "/" in word:
                try:
                    address = ipaddress.ip_interface(word).ip
                except ValueError:
                    continue
                if address in LINK_RANGE:
                    used.add((int(address) >> 8) & 0xFF)
    return used


@dataclass
class NodeNetwork:
    """A network namespace with a veth to the host; `expose()` opens host loopback ports to it."""

    name: str = field(default_factory=lambda: f"hooksync-{secrets.token_hex(3)}")
    host_address: str = ""
    node_address: str = ""
    _rules: list[list[str]] = field(default_factory=list)
    _created: bool = False

    @property
    def host_link(self) -> str:
        return "hsh" + self.name.removeprefix("hooksync-")

    @property
    def node_link(self) -> str:
        return "hsn" + self.name.removeprefix("hooksync-")

    @property
    def path(self) -> Path:
        return NETNS_ROOT / self.name

    def create(self) -> None:
        # Two runs on one machine (a test and `make e2e`) must not pick the same free /30: the
        # choice and the address that marks it taken happen under one lock.
        with _address_lock():
            _, self.host_address, self.node_address = link_addresses(_used_octets())
            _run("ip", "netns", "add", self.name)
            self._created = True
            try:
                self._link()
            except BaseException:
                self.destroy()
                raise
        try:
            self._configure()
        except BaseException:
            self.destroy()
            raise

    def _link(self) -> None:
        """The veth pair and the host-side address (which marks this /30 as taken)."""
        _run(
            "ip",
            "link",
            "add",
            self.host_link,
            "type",
            "veth",
            "peer",
            "name",
            self.node_link,
            "netns",
            self.name,
        )
        _run("ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_link)

    def _configure(self) -> None:
        _run("ip", "link", "set", self.host_link, "up")
        # Lets the DNAT below send the node's packets to 127.0.0.1; this interface only.
        Path(f"/proc/sys/net/ipv4/conf/{self.host_link}/route_localnet").write_text("1")
        inside = ("ip", "-n", self.name)
        _run(*inside, "link", "set", "lo", "up")
        _run(*inside, "addr", "add", f"{self.node_address}/30", "dev", self.node_link)
        _run(*inside, "link", "set", self.node_link, "up")
        _run(*inside, "route", "add", "default", "via", self.host_address)
        self.run_inside("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def run_inside(self, *argv: str) -> str:
        """Run a command in the namespace (network only; same mounts and processes)."""
        return _run("nsenter", f"--net={self.path}", *argv)

    def enter_argv(self) -> list[str]:
        """The prefix that starts a long-running program inside the namespace."""
        return ["nsenter", f"--net={self.path}"]

    def expose(self, port: int) -> str:
        """Make 127.0.0.1:`port` of this machine reachable from the node; returns host:port."""
        rule = [
            "-t",
            "nat",
            "PREROUTING",
            "-i",
            self.host_link,
            "-d",
            self.host_address,
            "-p",
            "tcp",
            "--dport",
            str(port),
            "-j",
            "DNAT",
            "--to-destination",
            f"127.0.0.1:{port}",
        ]
        _run("iptables", "-w", "-t", "nat", "-A", *rule[2:])
        self._rules.append(rule)
        return f"{self.host_address}:{port}"

    def destroy(self) -> None:
        """Remove the rules, the namespace and its veth; safe to call twice."""
        for rule in reversed(self._rules):
            subprocess.run(
                ["iptables", "-w", "-t", "nat", "-D", *rule[2:]], capture_output=True, check=False
            )
        self._rules.clear()
        if self._created:
            # Deleting the namespace deletes the node's end of the veth, and so its peer.
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
            subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, check=False)
            self._created = False
