"""Render step: plain YAML folders and kustomizations, in real temporary repositories."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from jobimage.errors import PermanentError, RenderError, TransientError
from jobimage.render import MAX_EXPANDED_NODES, render

REPO_ROOT = Path(__file__).resolve().parents[2]


def _kustomize_path() -> Path | None:
    try:
        folder = subprocess.run(
            [str(REPO_ROOT / "hack" / "build-binaries"), "--print"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    binary = Path(folder) / "kustomize"
    return binary if os.access(binary, os.X_OK) else None


@pytest.fixture(scope="module")
def kustomize() -> str:
    binary = _kustomize_path()
    if binary is None:
        pytest.skip("kustomize not built yet: run hack/build-binaries")
    return str(binary)


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def names(rendered) -> list[str]:
    return [m.obj["metadata"]["name"] for m in rendered.manifests]


def configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


# --- plain YAML --------------------------------------------------------------------------------


def test_multi_document_files_render_in_path_order_skipping_empty_documents(repo: Path) -> None:
    write(repo, "deploy/prod/b.yaml", "---\n" + configmap("b1") + "---\n---\n" + configmap("b2"))
    write(repo, "deploy/prod/a.yml", configmap("a"))
    write(repo, "deploy/prod/sub/c.yaml", configmap("c"))
    write(repo, "deploy/prod/notes.txt", "not yaml")
    write(repo, "deploy/other.yaml", configmap("outside-the-path"))

    rendered = render(repo, "deploy/prod")

    assert names(rendered) == ["a", "b1", "b2", "c"]
    assert [(m.source, m.document) for m in rendered.manifests] == [
        ("deploy/prod/a.yml", 1),
        ("deploy/prod/b.yaml", 1),
        ("deploy/prod/b.yaml", 3),
        ("deploy/prod/sub/c.yaml", 1),
    ]
    assert rendered.kustomization is None


def test_order_is_the_same_whatever_order_files_were_created_in(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    for root, order in ((first, ["z", "m", "a"]), (second, ["a", "z", "m"])):
        for name in order:
            write(root, f"app/{name}/x.yaml", configmap(name))
            write(root, f"app/{name}.yaml", configmap(f"{name}-top"))

    assert names(render(first, "app")) == names(render(second, "app"))
    # Sorted by path components: the folder app/a/ comes before the file app/a.yaml.
    assert names(render(first, "app")) == ["a", "a-top", "m", "m-top", "z", "z-top"]


def test_list_documents_are_expanded_into_their_items(repo: Path) -> None:
    write(
        repo,
        "app/list.yaml",
        """
        apiVersion: v1
        kind: List
        items:
        - {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}
        - {apiVersion: v1, kind: Secret, metadata: {name: two}}
        """,
    )

    rendered = render(repo, "app")

    assert names(rendered) == ["one", "two"]
    assert [m.where for m in rendered.manifests] == [
        "app/list.yaml document 1 item 1",
        "app/list.yaml document 1 item 2",
    ]


def test_missing_kind_names_the_file_and_document(repo: Path) -> None:
    write(
        repo,
        "deploy/prod/web.yaml",
        configmap("fine") + "---\napiVersion: apps/v1\nmetadata:\n  name: web\n",
    )

    with pytest.raises(RenderError, match=r"deploy/prod/web\.yaml document 2: missing kind"):
        render(repo, "deploy/prod")


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ("kind: ConfigMap\nmetadata: {name: x}\n", "missing apiVersion"),
        ("apiVersion: v1\nkind: ConfigMap\n", "missing metadata"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n", "generateName"),
        ("- just\n- a list\n", "is a list, not a Kubernetes object"),
        ("apiVersion: v1\nkind: List\nitems: {}\n", "kind List needs an 'items' list"),
    ],
)
def test_documents_that_are_not_objects_are_refused(
    repo: Path, document: str, complaint: str
) -> None:
    write(repo, "app/x.yaml", document)

    with pytest.raises(RenderError, match=complaint) as caught:
        render(repo, "app")

    assert "app/x.yaml document 1" in str(caught.value)


def test_invalid_yaml_names_the_file_and_line(repo: Path) -> None:
    write(repo, "app/ok.yaml", configmap("ok"))
    write(repo, "app/broken.yaml", "apiVersion: v1\nkind: [ConfigMap\nmetadata: {}\n")

    with pytest.raises(RenderError, match=r"app/broken\.yaml: invalid YAML at line \d+"):
        render(repo, "app")


def test_unquoted_dates_stay_strings_and_anchors_merge(repo: Path) -> None:
    write(
        repo,
        "app/cm.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: dated
          annotations: {released: 2024-05-01}
        data:
          base: &base {a: "1"}
          merged: {<<: *base, b: "2"}
        """,
    )

    (manifest,) = render(repo, "app").manifests

    assert manifest.obj["metadata"]["annotations"]["released"] == "2024-05-01"
    assert manifest.obj["data"]["merged"] == {"a": "1", "b": "2"}


def test_billion_laughs_is_refused_quickly(repo: Path) -> None:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, this = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"{this}: &{this} [" + ",".join([f"*{prev}"] * 9) + "]")
    write(repo, "app/lol.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n")
    with (repo / "app/lol.yaml").open("a") as fh:
        fh.write("".join(f"  {line}\n" for line in levels))

    with pytest.raises(RenderError, match=f"app/lol.yaml: refused.*{MAX_EXPANDED_NODES}"):
        render(repo, "app")


def test_binary_values_are_refused_with_advice(repo: Path) -> None:
    write(repo, "app/s.yaml", configmap("s") + "binaryData:\n  k: !!binary aGVsbG8=\n")

    with pytest.raises(RenderError, match=r"binaryData\.k .*quoted string"):
        render(repo, "app")


def test_hidden_files_and_folders_are_not_manifests(repo: Path) -> None:
    write(repo, "app/.github/workflows/ci.yaml", "on: push\njobs: {}\n")
    write(repo, "app/.gitlab-ci.yml", "stages: [test]\n")
    write(repo, "app/cm.yaml", configmap("only"))

    assert names(render(repo, "app")) == ["only"]


def test_whole_repository_is_a_valid_path(repo: Path) -> None:
    write(repo, "cm.yaml", configmap("root"))
    write(repo, ".git/config.yaml", "not: a manifest\n")

    assert names(render(repo, "")) == ["root"]
    assert names(render(repo, ".")) == ["root"]


def test_a_single_file_path_renders_that_file(repo: Path) -> None:
    write(repo, "app/one.yaml", configmap("one"))
    write(repo, "app/two.yaml", configmap("two"))

    assert names(render(repo, "app/one.yaml")) == ["one"]


def test_missing_path_names_the_path_and_short_sha(repo: Path) -> None:
    sha = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"

    with pytest.raises(RenderError, match=r"path 'deploy/prod' not found at a1b2c3d\b"):
        render(repo, "deploy/prod", sha=sha)
    with pytest.raises(RenderError, match="not found in the repository"):
        render(repo, "deploy/prod")


def test_symlinked_file_pointing_outside_the_repository_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    secret = write(tmp_path, "elsewhere/secret.yaml", configmap("stolen"))
    write(repo, "app/cm.yaml", configmap("mine"))
    (repo / "app/link.yaml").symlink_to(secret)

    with pytest.raises(RenderError, match=r"app/link\.yaml is a symlink to outside"):
        render(repo, "app")


def test_symlinks_to_files_that_are_not_manifests_are_left_alone(
    repo: Path, tmp_path: Path
) -> None:
    write(tmp_path, "elsewhere/LICENSE", "text")
    write(repo, "app/cm.yaml", configmap("mine"))
    (repo / "app/LICENSE").symlink_to(tmp_path / "elsewhere/LICENSE")
    (repo / "app/dangling.txt").symlink_to(tmp_path / "nothing")

    assert names(render(repo, "app")) == ["mine"]


def test_symlinked_folder_pointing_outside_the_repository_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    write(tmp_path, "elsewhere/secret.yaml", configmap("stolen"))
    write(repo, "app/cm.yaml", configmap("mine"))
    (repo / "app/shared").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    with pytest.raises(RenderError, match=r"app/shared is a symlink to outside"):
        render(repo, "app")


def test_path_that_escapes_the_repository_is_refused(repo: Path, tmp_path: Path) -> None:
    write(tmp_path, "elsewhere/cm.yaml", configmap("stolen"))
    (repo / "deploy").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    with pytest.raises(RenderError, match="resolves outside the repository"):
        render(repo, "deploy")
    with pytest.raises(RenderError, match="resolves outside the repository"):
        render(repo, "../elsewhere")


def test_symlinks_inside_the_repository_are_followed(repo: Path) -> None:
    write(repo, "common/shared.yaml", configmap("shared"))
    write(repo, "app/own.yaml", configmap("own"))
    (repo / "app/common").symlink_to(repo / "common", target_is_directory=True)

    rendered = render(repo, "app")

    assert names(rendered) == ["shared", "own"]
    assert rendered.manifests[0].source == "app/common/shared.yaml"


def test_render_errors_are_permanent() -> None:
    assert issubclass(RenderError, PermanentError)
    assert RenderError.exit_code == 2


# --- kustomize ---------------------------------------------------------------------------------


def test_kustomization_is_built_with_generator_and_name_prefix(repo: Path, kustomize: str) -> None:
    write(
        repo,
        "base/kustomization.yaml",
        "resources: [service.yaml]\n",
    )
    write(
        repo,
        "base/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
    )
    write(
        repo,
        "deploy/prod/kustomization.yaml",
        """
        namePrefix: prod-
        resources: [../../base]
        configMapGenerator:
        - name: settings
          literals: [LOG_LEVEL=debug]
        """,
    )
    write(repo, "deploy/prod/ignored.yaml", configmap("not-listed-in-kustomization"))

    rendered = render(repo, "deploy/prod", kustomize=kustomize)

    by_kind = {m.obj["kind"]: m.obj for m in rendered.manifests}
    assert set(by_kind) == {"ConfigMap", "Service"}
    assert by_kind["Service"]["metadata"]["name"] == "prod-web"
    assert by_kind["ConfigMap"]["metadata"]["name"].startswith("prod-settings-")
    assert by_kind["ConfigMap"]["data"] == {"LOG_LEVEL": "debug"}
    assert rendered.kustomization == "deploy/prod/kustomization.yaml"
    assert all(m.source == "deploy/prod/kustomization.yaml" for m in rendered.manifests)


def test_capitalised_kustomization_file_is_honoured(repo: Path, kustomize: str) -> None:
    write(repo, "app/Kustomization", "resources: [cm.yaml]\nnamePrefix: k-\n")
    write(repo, "app/cm.yaml", configmap("cm"))

    assert names(render(repo, "app", kustomize=kustomize)) == ["k-cm"]


def test_kustomize_binary_comes_from_the_environment(
    repo: Path, kustomize: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(repo, "app/kustomization.yaml", "resources: [cm.yaml]\nnameSuffix: -env\n")
    write(repo, "app/cm.yaml", configmap("cm"))
    monkeypatch.setenv("HOOKSYNC_KUSTOMIZE", kustomize)

    assert names(render(repo, "app")) == ["cm-env"]


def test_missing_kustomize_binary_says_how_to_fix(repo: Path, tmp_path: Path) -> None:
    write(repo, "app/kustomization.yaml", "resources: [cm.yaml]\n")
    write(repo, "app/cm.yaml", configmap("cm"))

    with pytest.raises(RenderError, match="set HOOKSYNC_KUSTOMIZE"):
        render(repo, "app", kustomize=str(tmp_path / "no-such-kustomize"))


@pytest.mark.parametrize(
    "remote",
    [
        "https://github.com/acme/base//deploy?ref=v1",
        "github.com/acme/base/deploy?ref=v1",
        "git@github.com:acme/base.git",
        "ssh://git@example.com/acme/base.git",
    ],
)
def test_remote_bases_are_refused_before_kustomize_runs(
    repo: Path, tmp_path: Path, remote: str
) -> None:
    write(repo, "app/kustomization.yaml", f"resources:\n- cm.yaml\n- {remote}\n")
    write(repo, "app/cm.yaml", configmap("cm"))

    # A binary that does not exist proves the refusal comes from the scan, not from kustomize.
    with pytest.raises(RenderError, match=r"app/kustomization\.yaml: resources .* remote base"):
        render(repo, "app", kustomize=str(tmp_path / "no-such-kustomize"))


def test_remote_base_in_a_nested_base_is_refused(repo: Path, kustomize: str) -> None:
    write(repo, "base/kustomization.yaml", "bases:\n- github.com/acme/base?ref=main\n")
    write(repo, "app/kustomization.yaml", "resources: [../base]\n")

    with pytest.raises(RenderError, match=r"base/kustomization\.yaml: bases .* remote base"):
        render(repo, "app", kustomize=kustomize)


def test_exec_function_transformer_is_refused(repo: Path, kustomize: str) -> None:
    write(repo, "app/kustomization.yaml", "resources: [cm.yaml]\ntransformers: [fn.yaml]\n")
    write(repo, "app/cm.yaml", configmap("cm"))
    write(
        repo,
        "app/fn.yaml",
        """
        apiVersion: example.com/v1
        kind: Tamper
        metadata:
          name: tamper
          annotations:
            config.kubernetes.io/function: |
              exec:
                path: ./tamper.sh
        """,
    )

    with pytest.raises(RenderError, match=r"transformers entry 'fn\.yaml' configures a KRM"):
        render(repo, "app", kustomize=kustomize)


def test_legacy_exec_plugin_generator_is_refused(repo: Path, kustomize: str) -> None:
    write(repo, "app/kustomization.yaml", "generators: [gen.yaml]\n")
    write(repo, "app/gen.yaml", "apiVersion: someteam.example.com/v1\nkind: SecretsFromVault\n")

    with pytest.raises(RenderError, match=r"external plugin .*apiVersion: builtin"):
        render(repo, "app", kustomize=kustomize)


def test_builtin_plugin_transformer_is_allowed(repo: Path, kustomize: str) -> None:
    write(repo, "app/kustomization.yaml", "resources: [cm.yaml]\ntransformers: [prefix.yaml]\n")
    write(repo, "app/cm.yaml", configmap("cm"))
    write(
        repo,
        "app/prefix.yaml",
        """
        apiVersion: builtin
        kind: PrefixSuffixTransformer
        metadata: {name: prefix}
        prefix: builtin-
        fieldSpecs: [{path: metadata/name}]
        """,
    )

    assert names(render(repo, "app", kustomize=kustomize)) == ["builtin-cm"]


def test_base_outside_the_repository_is_refused(repo: Path, tmp_path: Path, kustomize: str) -> None:
    write(tmp_path, "outside/kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path, "outside/cm.yaml", configmap("stolen"))
    write(repo, "app/kustomization.yaml", "resources: [../../outside]\n")

    with pytest.raises(RenderError, match="points outside the repository"):
        render(repo, "app", kustomize=kustomize)


def test_kustomize_failure_is_reported_with_repository_relative_paths(
    repo: Path, kustomize: str
) -> None:
    write(repo, "app/kustomization.yaml", "resources: [cm.yaml]\npatches: [{path: gone.yaml}]\n")
    write(repo, "app/cm.yaml", configmap("cm"))

    with pytest.raises(RenderError, match=r"kustomize build of app/kustomization\.yaml failed"):
        render(repo, "app", kustomize=kustomize)


def test_kustomize_timeout_is_transient(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = tmp_path / "slow-kustomize"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    write(repo, "app/kustomization.yaml", "resources: [cm.yaml]\n")
    write(repo, "app/cm.yaml", configmap("cm"))
    monkeypatch.setattr("jobimage.render.KUSTOMIZE_TIMEOUT_SECONDS", 0.2)

    with pytest.raises(TransientError, match="took over"):
        render(repo, "app", kustomize=str(slow))


def test_kustomize_runs_with_a_clean_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = tmp_path / "spy-kustomize"
    spy.write_text(
        '#!/bin/sh\nenv > "$(dirname "$0")/env.txt"\necho "$@" > "$(dirname "$0")/argv.txt"\n'
    )
    spy.chmod(0o755)
    write(repo, "app/kustomization.yaml", "resources: []\n")
    monkeypatch.setenv("HOOKSYNC_GIT_TOKEN", "do-not-leak")

    assert render(repo, "app", kustomize=str(spy)).manifests == []

    env = (tmp_path / "env.txt").read_text()
    assert "do-not-leak" not in env
    assert f"HOME={Path.home()}" not in env
    argv = (tmp_path / "argv.txt").read_text().split()
    assert argv[:3] == ["build", "--load-restrictor", "LoadRestrictionsRootOnly"]
    assert argv[3] == str(repo.resolve() / "app")
