"""Hostile manifests for tests and benches: YAML that is small on disk and huge once expanded."""

from __future__ import annotations


def bytes_bomb(
    name: str = "bomb", layers: int = 5, fan: int = 10, scalars: int = 8, scalar: int = 1024
) -> str:
    """A ConfigMap of about 9 KB whose aliases expand to about 1 GB of JSON in under a million
    nodes, so a guard that counts nodes alone lets it through.

    Eight 1 KB scalars, then `layers` lists, each holding the one below (anchored where it is
    written) and `fan - 1` aliases of it.
    """
    values = ", ".join(f'"{chr(ord("a") + i) * scalar}"' for i in range(scalars))
    nested = f"&l0 [{values}]"
    for layer in range(1, layers + 1):
        aliases = ", ".join([f"*l{layer - 1}"] * (fan - 1))
        nested = f"&l{layer} [{nested}, {aliases}]"
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: {nested}\n"


def nested(name: str = "deep", depth: int = 500) -> str:
    """A ConfigMap whose data nests `depth` flow lists deep: fine for libyaml (up to 1000), too
    deep for the recursive steps after it."""
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"
        f"data: {{k: {'[' * depth}{']' * depth}}}\n"
    )
