"""Hostile manifests for tests and benches: YAML that is small on disk and huge once expanded."""

from __future__ import annotations


def bytes_bomb(
    name: str = "bomb", layers: int = 5, fan: int = 10, scalars: int = 8, scalar: int = 1024
) -> str:
    """A ConfigMap of about 9 KB whose aliases expand to about 1 GB of JSON.

    Eight 1 KB scalars, then `layers` lists that each alias the one below `fan` times: few
    nodes (a node-counting guard passes it), many bytes.
    """
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", f"  name: {name}", "data:"]
    values = ", ".join(f'"{chr(ord("a") + i) * scalar}"' for i in range(scalars))
    lines.append(f"  l0: &l0 [{values}]")
    for layer in range(1, layers + 1):
        refs = ", ".join(f"*l{layer - 1}" for _ in range(fan))
        lines.append(f"  l{layer}: &l{layer} [{refs}]")
    return "\n".join(lines) + "\n"


def nested(name: str = "deep", depth: int = 500) -> str:
    """A ConfigMap whose data nests `depth` flow lists deep: fine for libyaml (up to 1000), too
    deep for the recursive steps after it."""
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"
        f"data: {{k: {'[' * depth}{']' * depth}}}\n"
    )
