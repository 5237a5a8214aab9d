"""The shape of the code: which module may import which.

Read from the source with `ast`, so nothing is imported to check it:
- in receiver/, only the command line entry imports the HTTP app module;
- no import cycle anywhere in hooksync/, receiver/, jobimage/ or world/;
- the receiver's stages import only stages before them (intake < dispatch < reporting < pages),
  as the README's flow goes; the modules at receiver/'s top (state, jobview, jobapi, following,
  kept, metrics, secrets, app, cli) are not a stage.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hooksync", "receiver", "jobimage", "world")
STAGES = ("intake", "dispatch", "reporting", "pages")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = modules()


def imported(name: str, path: Path) -> Iterator[str]:
    """The project modules `name` imports, wherever in the file (functions included)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")
                drop = node.level - 1 if is_package else node.level
                package = package[: len(package) - drop]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                # `from receiver import jobview` imports the module receiver.jobview.
                submodule = f"{base}.{alias.name}"
                yield from _known(submodule if submodule in MODULES else base)


def _known(module: str) -> Iterator[str]:
    while module and module not in MODULES:
        module = module.rpartition(".")[0]
    if module:
        yield module


GRAPH = {name: set(imported(name, path)) - {name} for name, path in MODULES.items()}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "receiver" and len(parts) > 1 and parts[1] in STAGES:
        return parts[1]
    return None


def test_the_graph_sees_the_packages() -> None:
    # A parser that found nothing would pass every check below.
    assert {"receiver.app", "receiver.cli", "receiver.intake.events", "jobimage.converge"} <= set(
        GRAPH
    )
    assert "receiver.app" in GRAPH["receiver.cli"]
    assert "receiver.jobview" in GRAPH["receiver.dispatch.coalescing"]


def test_only_the_command_line_imports_the_http_app() -> None:
    importers = sorted(
        name
        for name, targets in GRAPH.items()
        if name.startswith("receiver") and "receiver.app" in targets
    )
    assert importers == ["receiver.cli"]


def test_no_import_cycle() -> None:
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycles.append([*path[path.index(name) :], name])
            return
        if name in done:
            return
        for target in sorted(GRAPH[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])
    assert cycles == []


@pytest.mark.parametrize("stage", STAGES)
def test_receiver_stages_import_only_earlier_stages(stage: str) -> None:
    allowed = set(STAGES[: STAGES.index(stage) + 1])
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if stage_of(name) == stage
        for target in targets
        if stage_of(target) is not None and stage_of(target) not in allowed
    )
    assert upward == []


def test_shared_receiver_modules_import_no_later_stage_than_their_importers() -> None:
    # jobview and jobapi sit below every stage: they read and fetch Jobs and nothing else.
    for shared in ("receiver.jobview", "receiver.jobapi"):
        assert {stage_of(t) for t in GRAPH[shared]} == {None}, GRAPH[shared]
