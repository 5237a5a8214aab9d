"""YAML bombs by bytes and by depth: refused by the render step, before anything expands them,
with the file named; kustomize never sees one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from jobimage import render as render_module
from jobimage.converge import pipeline_step
from jobimage.errors import PermanentError, RenderError
from jobimage.render import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_NODES,
    MAX_FILE_BYTES,
    MAX_RENDER_NODES,
    render,
)
from tests.unit import test_render
from world.hostile import bytes_bomb, nested

# The render tests' fixture: the kustomize that hack/build-binaries built (skips without it).
kustomize = test_render.kustomize

# Kustomize must never run in these tests: a render that reaches it fails differently.
NO_KUSTOMIZE = "/nonexistent/kustomize"


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


def test_a_bomb_by_bytes_in_plain_yaml_is_refused_with_the_file_named(repo: Path) -> None:
    write(repo, "app/bomb.yaml", bytes_bomb())
    assert (repo / "app/bomb.yaml").stat().st_size < 10_000

    with pytest.raises(RenderError, match=r"^app/bomb.yaml: refused, a document expands to over"):
        render(repo, "app")


def test_a_bomb_by_bytes_in_a_kustomize_resource_is_refused_before_kustomize_runs(
    repo: Path,
) -> None:
    write(repo, "app/kustomization.yaml", "resources: [base]\n")
    write(repo, "app/base/kustomization.yaml", "resources: [web.yaml, bomb.yaml]\n")
    write(repo, "app/base/web.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
    write(repo, "app/base/bomb.yaml", bytes_bomb())

    with pytest.raises(RenderError, match=r"^app/base/bomb.yaml: refused"):
        render(repo, "app", kustomize=NO_KUSTOMIZE)


def test_a_bomb_kustomize_could_read_as_a_patch_is_refused_too(repo: Path) -> None:
    write(
        repo,
        "app/kustomization.yaml",
        "resources: [web.yaml]\npatches: [{path: patches/web.yaml}]\n",
    )
    write(repo, "app/web.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
    write(repo, "app/patches/web.yaml", bytes_bomb("web"))

    with pytest.raises(RenderError, match=r"^app/patches/web.yaml: refused"):
        render(repo, "app", kustomize=NO_KUSTOMIZE)


def test_a_clean_kustomization_reaches_kustomize(repo: Path) -> None:
    # The measuring pass lets ordinary files through: what fails here is the missing binary.
    write(repo, "app/kustomization.yaml", "resources: [web.yaml]\n")
    write(repo, "app/web.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
    write(repo, "app/notes.txt", "not: [yaml\n")

    with pytest.raises(RenderError, match=r"kustomize binary .* not found"):
        render(repo, "app", kustomize=NO_KUSTOMIZE)


def test_documents_that_pass_one_by_one_but_not_together_are_refused(repo: Path) -> None:
    # Each document expands to about 3 MiB (under the bound); enough of them pass the file's.
    one = bytes_bomb(layers=3, fan=8, scalars=3, scalar=2048)
    count = MAX_FILE_BYTES // (3 * 2**20) + 2
    write(repo, "app/many.yaml", "---\n".join([one] * count))

    with pytest.raises(RenderError, match=r"^app/many.yaml: refused, its documents expand to"):
        render(repo, "app")


def test_dense_yaml_is_refused_before_it_is_composed(repo: Path) -> None:
    # No alias at all: 2 bytes a node, 4 MB of them, would take a gigabyte to compose.
    items = ",".join(["0"] * (MAX_DOCUMENT_NODES + 1))
    write(repo, "app/dense.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n")
    with (repo / "app/dense.yaml").open("a") as file:
        file.write(f"data: {{k: [{items}]}}\n")

    with pytest.raises(RenderError, match=r"^app/dense.yaml: refused, a document holds over"):
        render(repo, "app")


def test_many_files_together_are_bounded_naming_the_file_that_passes(repo: Path) -> None:
    items = ",".join(["0"] * (MAX_DOCUMENT_NODES - 100))
    files = MAX_RENDER_NODES // MAX_DOCUMENT_NODES + 1
    for index in range(files):
        write(repo, f"app/f{index}.yaml", "apiVersion: v1\nkind: ConfigMap\n")
        with (repo / f"app/f{index}.yaml").open("a") as file:
            file.write(f"metadata: {{name: f{index}}}\ndata: {{k: [{items}]}}\n")

    with pytest.raises(RenderError, match=rf"^app/f{files - 1}.yaml: refused, the manifests hold"):
        render(repo, "app")


def test_a_real_sized_object_with_anchors_is_accepted(repo: Path) -> None:
    # A 1 MiB ConfigMap value, the largest the API server stores, aliased once.
    value = "x" * (MAX_DOCUMENT_BYTES // 4)
    write(
        repo,
        "app/big.yaml",
        f'apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  a: &v "{value}"\n'
        "  b: *v\n",
    )

    (manifest,) = render(repo, "app").manifests
    assert manifest.obj["data"]["b"] == value


def test_deep_nesting_is_refused_with_the_file_named(repo: Path) -> None:
    write(repo, "app/deep.yaml", nested(depth=MAX_DEPTH + 1))

    with pytest.raises(RenderError, match=r"^app/deep.yaml: refused, it nests deeper than"):
        render(repo, "app")


def test_a_recursion_error_in_any_step_is_permanent_and_names_the_step() -> None:
    @pipeline_step("apply")
    def recurse(depth: int) -> int:
        return recurse(depth + 1)

    with pytest.raises(PermanentError, match=r"^an object is nested too deeply") as raised:
        recurse(0)
    assert raised.value.step == "apply"


def test_kustomize_output_past_the_bound_is_refused(
    repo: Path, kustomize: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every input is small and clean, but the overlay includes the base many times over.
    monkeypatch.setattr(render_module, "MAX_FILE_BYTES", 256 * 1024)
    value = "x" * 30_000
    write(repo, "app/base/kustomization.yaml", "resources: [big.yaml]\n")
    write(
        repo,
        "app/base/big.yaml",
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{v: {value}}}\n",
    )
    copies = [f"c{index}" for index in range(12)]
    for copy in copies:
        write(
            repo, f"app/{copy}/kustomization.yaml", f"namePrefix: {copy}-\nresources: [../base]\n"
        )
    write(repo, "app/kustomization.yaml", f"resources: [{', '.join(copies)}]\n")

    with pytest.raises(RenderError, match=r"^kustomize build of app/kustomization.yaml: refused"):
        render(repo, "app", kustomize=kustomize)
