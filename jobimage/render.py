"""Render step: turn a target's path in a checked-out commit into Kubernetes object dicts.

A kustomization at the path is built with kustomize (local files only, no plugins; Helm charts
it inflates must be local); otherwise every *.yaml / *.yml below the path is read, in a stable
order. Helm charts are rendered by jobimage.helm, which builds on this module's checks.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

import yaml

from jobimage.errors import RenderError, TransientError

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: same behaviour, slower
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = ["KUSTOMIZATION_FILES", "Manifest", "RenderError", "Rendered", "render"]

KUSTOMIZATION_FILES: Final = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_ENV: Final = "HOOKSYNC_KUSTOMIZE"
KUSTOMIZE_TIMEOUT_SECONDS: Final = 120

# YAML bomb guards. PyYAML resolves an alias to the *same* Python object, so loading is cheap,
# but every later step (deep copy, JSON for the API server) expands the shared subtrees. So each
# document's node graph is measured *as expanded* before it is constructed: nodes, bytes of
# scalars (a 9 KB file of 1 KB scalars aliased in layers expands to a gigabyte with few nodes)
# and depth (deep nesting exhausts Python's recursion in later steps). Ordinary anchors and
# merge keys (`<<: *defaults`) stay allowed; a real object is far below every bound (the API
# server stores at most ~1.5 MB per object, and nests nowhere near 100 levels).
MAX_EXPANDED_NODES: Final = 1_000_000
MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024
MAX_FILE_BYTES: Final = 64 * 1024 * 1024  # all documents of one file (or of kustomize's output)
MAX_DEPTH: Final = 100
# Dense YAML costs memory without any alias: composing a node takes about 500 bytes, so a 4 MB
# file of short list items would need a gigabyte. Nodes as written are counted from the parser's
# events (a streaming pass that holds one event at a time) before anything is composed: per
# document, and over the whole render (or everything kustomize reads).
MAX_DOCUMENT_NODES: Final = 250_000
MAX_RENDER_NODES: Final = 1_000_000
# What a node adds to the JSON beyond its scalar text: quotes, separators, brackets.
_NODE_OVERHEAD_BYTES: Final = 3

_REMOTE_PREFIXES: Final = ("github.com/", "gitlab.com/", "bitbucket.org/", "git@", "ssh:", "git::")
_YAML: Final = (".yaml", ".yml")
_PLUGIN_FIELDS: Final = ("generators", "transformers", "validators")
_BASE_FIELDS: Final = ("resources", "bases", "components")
_FUNCTION_ANNOTATIONS: Final = ("config.kubernetes.io/function", "config.k8s.io/function")


@dataclass(frozen=True)
class Manifest:
    """One rendered object and where it came from (for error messages and summaries)."""

    obj: dict[str, Any]
    source: str  # path relative to the repository root, "/"-separated
    document: int  # 1-based position of the YAML document in `source`, empty ones counted
    item: int | None = None  # 1-based position inside a `kind: List` document

    @property
    def where(self) -> str:
        """Where it came from: 'deploy/prod/web.yaml document 2' (+ ' item 3' inside a List)."""
        place = f"{self.source} document {self.document}"
        return place if self.item is None else f"{place} item {self.item}"


@dataclass(frozen=True)
class Rendered:
    """The render step's result: the objects in a stable order, and how they were made."""

    manifests: list[Manifest]
    kustomization: str | None = None  # the kustomization file built, relative to the repo
    chart: str | None = None  # the Helm chart rendered, relative to the repo


def render(
    repo_dir: Path,
    path: str,
    kustomize: str | None = None,
    sha: str | None = None,
    helm: str | None = None,
) -> Rendered:
    """Render `path` inside the checked-out `repo_dir`; `sha` only improves error messages.
    `helm` is the helm binary kustomize inflates `helmCharts` with (needed only for those).

    Raises RenderError (permanent) for anything the commit has to fix, TransientError when
    kustomize times out.
    """
    root = Path(repo_dir).resolve(strict=True)
    start = _resolve_target_path(root, path, sha)
    if start.is_dir():
        kustomization = _kustomization_file(start)
        if kustomization is not None:
            return _render_kustomization(root, start, kustomization, kustomize, helm)
        files = _manifest_files(root, start, _relative(root, start))
    elif start.suffix.lower() in _YAML:
        files = [(_relative(root, start), start)]
    else:
        raise RenderError(
            f"path {path!r} is neither a folder nor a .yaml file; point the target's path at "
            "a folder of manifests or a kustomization"
        )
    manifests: list[Manifest] = []
    budget = _NodeBudget()
    for source, file in files:
        manifests.extend(_manifests_in(_read_text(file, source), source, budget))
    return Rendered(manifests=manifests)


# --- locating files ---------------------------------------------------------------------------


def _resolve_target_path(root: Path, path: str, sha: str | None) -> Path:
    candidate = root / (path or ".")
    if not candidate.exists():
        at = f"at {sha[:7]}" if sha else "in the repository"
        raise RenderError(
            f"path {path!r} not found {at}; check the target's path and that the branch has it"
        )
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise RenderError(
            f"path {path!r} resolves outside the repository; use a path inside the repository "
            "(symlinks out of it are refused)"
        )
    return resolved


def _relative(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return "." if rel == "" else rel


def _inside(root: Path, link: Path, shown: str) -> Path:
    """The target of a symlink, refusing one that leaves the repository (or dangles)."""
    try:
        resolved = link.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RenderError(f"{shown} is a broken or looping symlink; fix or remove it") from exc
    if not resolved.is_relative_to(root):
        raise RenderError(
            f"{shown} is a symlink to outside the repository; hooksync only reads files "
            "committed in the repository — copy the file in instead"
        )
    return resolved


def _manifest_files(root: Path, start: Path, start_shown: str) -> list[tuple[str, Path]]:
    """Every *.yaml / *.yml below `start`, sorted by relative path, component by component.

    Hidden files and folders (".git", ".github", ".gitlab-ci.yml") are not manifests and are
    skipped. Symlinks inside the repository are followed (each folder once); symlinks out of it
    are refused.
    """
    found = list(
        _walk(root, start, PurePosixPath(start_shown), include_hidden=False, suffixes=_YAML)
    )
    found.sort(key=lambda pair: pair[0].parts)
    return [(shown.as_posix(), file) for shown, file in found]


def _walk(
    root: Path,
    folder: Path,
    shown: PurePosixPath,
    include_hidden: bool,
    suffixes: tuple[str, ...] | None = None,
) -> Iterator[tuple[PurePosixPath, Path]]:
    """Files below `folder` (following in-repo symlinks), as (shown path, real path).

    With `suffixes`, only files ending so are yielded, and only their symlinks are checked.
    """
    seen: set[Path] = set()
    pending: list[tuple[Path, PurePosixPath]] = [(folder, shown)]
    while pending:
        here, here_shown = pending.pop()
        real_here = here.resolve()
        if real_here in seen:
            continue
        seen.add(real_here)
        for entry in sorted(here.iterdir()):
            if entry.name == ".git" or (not include_hidden and entry.name.startswith(".")):
                continue
            entry_shown = here_shown / entry.name
            if suffixes and not entry.is_dir() and entry.suffix.lower() not in suffixes:
                continue
            real = _inside(root, entry, entry_shown.as_posix()) if entry.is_symlink() else entry
            if real.is_dir():
                pending.append((real, entry_shown))
            elif real.is_file():
                yield entry_shown, real


def _read_text(file: Path, shown: str) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RenderError(f"{shown} is not UTF-8 text; save it as UTF-8") from exc
    except OSError as exc:
        raise RenderError(f"{shown} cannot be read: {exc.strerror}") from exc


# --- YAML --------------------------------------------------------------------------------------


class _ManifestLoader(_SafeLoader):
    """SafeLoader (no Python objects) that measures alias expansion before constructing."""

    expanded_bytes = 0  # of the documents loaded so far from this stream

    def construct_document(self, node: yaml.Node) -> Any:
        self.expanded_bytes += _check_expanded_size(node, self.expanded_bytes)
        return super().construct_document(node)


# Kubernetes (via JSON) sees an unquoted date as a string; PyYAML would make a datetime that
# cannot be sent back as JSON. Keep the text.
def _timestamp_as_text(loader: _ManifestLoader, node: yaml.Node) -> str:
    return str(node.value)


_ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


class _YamlTooLarge(Exception):
    pass


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


@dataclass(frozen=True)
class _Size:
    nodes: int
    bytes: int
    depth: int


def _check_expanded_size(root: yaml.Node, before: int = 0) -> int:
    """Measure one document as if every alias were copied out; return its expanded bytes.

    Refuses (_YamlTooLarge) a document over MAX_EXPANDED_NODES nodes, MAX_DOCUMENT_BYTES bytes
    or MAX_DEPTH levels, and a stream whose documents pass MAX_FILE_BYTES after `before` bytes.
    Memoised per node, so it is linear in the size of the graph, not of the expansion.
    """
    sizes: dict[int, _Size] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if expanded:
            on_path.discard(key)
            children = [sizes[id(child)] for child in _children(node)]
            size = _Size(
                nodes=1 + sum(child.nodes for child in children),
                bytes=_NODE_OVERHEAD_BYTES
                + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
                + sum(child.bytes for child in children),
                depth=1 + max((child.depth for child in children), default=0),
            )
            if size.nodes > MAX_EXPANDED_NODES:
                raise _YamlTooLarge(f"its aliases expand to over {MAX_EXPANDED_NODES} nodes")
            if size.bytes > MAX_DOCUMENT_BYTES:
                raise _YamlTooLarge(
                    f"a document expands to over {MAX_DOCUMENT_BYTES // 2**20} MiB "
                    "(a Kubernetes object is at most 1.5 MiB)"
                )
            if before + size.bytes > MAX_FILE_BYTES:
                raise _YamlTooLarge(f"its documents expand to over {MAX_FILE_BYTES // 2**20} MiB")
            if size.depth > MAX_DEPTH:
                raise _YamlTooLarge(f"it nests deeper than {MAX_DEPTH} levels")
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _YamlTooLarge("an alias refers to a node that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)].bytes


class _NodeBudget:
    """The YAML nodes (as written) a render may still compose, over all its files."""

    def __init__(self) -> None:
        self.left = MAX_RENDER_NODES

    def spend(self, nodes: int) -> None:
        self.left -= nodes
        if self.left < 0:
            raise _YamlTooLarge(
                f"the manifests hold over {MAX_RENDER_NODES} YAML nodes in all; split the "
                "target, or move large data out of Git"
            )


def _count_nodes(text: str) -> int:
    """Nodes as written, from a streaming parse; _YamlTooLarge for a document over
    MAX_DOCUMENT_NODES nodes or MAX_DEPTH levels. YAMLError for text that is not YAML."""
    total = in_document = depth = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            in_document = 0
        elif isinstance(event, yaml.NodeEvent):  # scalar, alias, start of a list or mapping
            in_document += 1
            total += 1
            if in_document > MAX_DOCUMENT_NODES:
                raise _YamlTooLarge(f"a document holds over {MAX_DOCUMENT_NODES} YAML nodes")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _YamlTooLarge(f"it nests deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return total


def _load_documents(text: str, shown: str, budget: _NodeBudget | None = None) -> list[Any]:
    try:
        nodes = _count_nodes(text)
        if budget is not None:
            budget.spend(nodes)
        return list(yaml.load_all(text, Loader=_ManifestLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise RenderError(f"{shown}: invalid YAML{at}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise RenderError(f"{shown}: invalid YAML: {exc}") from exc
    except _YamlTooLarge as exc:
        raise _refused(shown, exc) from exc
    except RecursionError as exc:
        raise RenderError(f"{shown}: YAML is nested too deeply to be a Kubernetes object") from exc


def _refused(shown: str, exc: _YamlTooLarge) -> RenderError:
    return RenderError(
        f"{shown}: refused, {exc} (YAML bomb guard); write the objects out with fewer anchors "
        "and aliases, smaller and flatter"
    )


def _check_yaml_input(text: str, shown: str, budget: _NodeBudget) -> None:
    """Measure every document of a file another program will parse, without constructing it.

    Text that is not YAML is left to that program to report: only the sizes are checked here.
    """
    try:
        budget.spend(_count_nodes(text))
    except yaml.YAMLError:
        return
    except _YamlTooLarge as exc:
        raise _refused(shown, exc) from exc
    loader = _ManifestLoader(text)
    total = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                total += _check_expanded_size(node, total)
    except yaml.YAMLError:
        return
    except _YamlTooLarge as exc:
        raise _refused(shown, exc) from exc
    finally:
        loader.dispose()


def _manifests_in(text: str, shown: str, budget: _NodeBudget | None = None) -> list[Manifest]:
    manifests: list[Manifest] = []
    for number, document in enumerate(_load_documents(text, shown, budget), start=1):
        if document is None:
            continue
        where = f"{shown} document {number}"
        if isinstance(document, dict) and document.get("kind") == "List":
            items = document.get("items")
            if not isinstance(items, list):
                raise RenderError(f"{where}: kind List needs an 'items' list")
            for position, item in enumerate(items, start=1):
                _check_object(item, f"{where} item {position}")
                manifests.append(Manifest(item, shown, number, position))
        else:
            _check_object(document, where)
            manifests.append(Manifest(document, shown, number))
    return manifests


def _check_object(document: Any, where: str) -> None:
    needs = "every document needs apiVersion, kind and metadata.name"
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a {type(document).__name__}"
        raise RenderError(f"{where}: is {kind}, not a Kubernetes object ({needs})")
    for field in ("apiVersion", "kind"):
        value = document.get(field)
        if not isinstance(value, str) or not value:
            raise RenderError(f"{where}: missing {field} ({needs})")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise RenderError(f"{where}: missing metadata ({needs})")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        hint = "; generateName is not supported" if "generateName" in metadata else ""
        raise RenderError(f"{where}: missing metadata.name ({needs}{hint})")
    _check_json_values(document, where)


def _check_json_values(document: dict[str, Any], where: str) -> None:
    """Refuse values JSON cannot carry (!!binary, !!set, non-string keys): quote them."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, at = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                if not isinstance(key, str):
                    raise RenderError(
                        f"{where}: key {key!r} under {at or 'the top level'} is not a string; "
                        "quote it"
                    )
                stack.append((child, f"{at}.{key}" if at else key))
        elif isinstance(value, list):
            stack.extend((child, f"{at}[{i}]") for i, child in enumerate(value))
        elif not isinstance(value, str | int | float | bool) and value is not None:
            raise RenderError(
                f"{where}: {at} is a {type(value).__name__} value (a YAML tag such as !!binary), "
                "which Kubernetes cannot take; write it as a quoted string"
            )


# --- kustomize ---------------------------------------------------------------------------------


def _kustomization_file(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _render_kustomization(
    root: Path, start: Path, kustomization: Path, kustomize: str | None, helm: str | None = None
) -> Rendered:
    uses_helm = _check_kustomizations(root, start)
    binary = _kustomize_binary(kustomize)
    shown = _relative(root, kustomization)
    with tempfile.TemporaryDirectory(prefix="hooksync-kustomize-") as home:
        # A clean environment: no user config, no plugin folder, no PATH (so no git, no exec).
        env = {
            "HOME": home,
            "XDG_CONFIG_HOME": home,
            "KUSTOMIZE_PLUGIN_HOME": os.path.join(home, "plugins"),
        }
        argv = [binary, "build", "--load-restrictor", "LoadRestrictionsRootOnly", str(start)]
        if uses_helm:
            argv += _kustomize_helm_flags(helm, shown)
        output = Path(home) / "output.yaml"
        try:
            with output.open("w") as sink:
                done = subprocess.run(
                    argv,
                    cwd=home,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.PIPE,
                    text=True,
                    timeout=KUSTOMIZE_TIMEOUT_SECONDS,
                    check=False,
                    # The inputs are measured, but overlays can still include one base many
                    # times: the output file is bounded too (past it, writes fail).
                    preexec_fn=_limit_output,
                )
        except FileNotFoundError as exc:
            raise RenderError(
                f"kustomize binary {binary!r} not found; install kustomize or set "
                f"{KUSTOMIZE_ENV} to its path"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise TransientError(
                f"kustomize build of {shown} took over {KUSTOMIZE_TIMEOUT_SECONDS}s"
            ) from exc
        if output.stat().st_size >= MAX_FILE_BYTES:
            raise RenderError(
                f"kustomize build of {shown}: refused, its output passes "
                f"{MAX_FILE_BYTES // 2**20} MiB; include each base fewer times"
            )
        text = output.read_text(encoding="utf-8", errors="replace")
    if done.returncode != 0:
        detail = done.stderr.strip().replace(f"{root}/", "").replace(str(root), ".")
        raise RenderError(f"kustomize build of {shown} failed: {detail[-2000:]}")
    return Rendered(manifests=_manifests_in(text, shown, _NodeBudget()), kustomization=shown)


def _kustomize_helm_flags(helm: str | None, shown: str) -> list[str]:
    """helmCharts: inflated by the pinned helm, by absolute path (kustomize runs without PATH)."""
    if not helm:
        raise RenderError(
            f"{shown} inflates helmCharts, but helm was not found; install helm or set "
            "HOOKSYNC_HELM to its path"
        )
    return ["--enable-helm", "--helm-command", os.path.abspath(helm)]


def _limit_output() -> None:
    """In kustomize's process: no file may grow past MAX_FILE_BYTES (writes then fail)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))


def _kustomize_binary(explicit: str | None) -> str:
    binary = explicit or os.environ.get(KUSTOMIZE_ENV) or shutil.which("kustomize")
    if not binary:
        raise RenderError(
            f"kustomize not found on PATH; install kustomize or set {KUSTOMIZE_ENV} to its path"
        )
    return binary


def _is_remote(entry: str) -> bool:
    return "://" in entry or entry.startswith(_REMOTE_PREFIXES)


def _check_kustomizations(root: Path, start: Path) -> bool:
    """Refuse remote bases and non-builtin plugins in every kustomization `start` reaches.

    kustomize itself refuses exec/function plugins without its alpha flags and files outside
    each kustomization's root; this check gives a clear message, and also refuses remote bases
    (which kustomize would fetch) and symlinks out of the repository. Every file below those
    roots (all that kustomize may read) is measured for YAML bombs first: kustomize has no
    bound of its own on what aliases expand to. True when a kustomization inflates Helm charts
    (helmCharts), which jobimage.helm checks: local charts only.
    """
    uses_helm = False
    pending = [start]
    visited: set[Path] = set()
    readable: dict[Path, str] = {}  # every file kustomize may read, once, as shown
    budget = _NodeBudget()
    while pending:
        folder = pending.pop()
        if folder in visited:
            continue
        visited.add(folder)
        # Walking also refuses symlinks that leave the repository.
        for shown_file, real in _walk(
            root, folder, PurePosixPath(_relative(root, folder)), include_hidden=True
        ):
            readable.setdefault(real, shown_file.as_posix())
        file = _kustomization_file(folder)
        if file is None:
            continue  # a plain folder of resources; kustomize reports what is missing
        shown = _relative(root, file)
        documents = _load_documents(_read_text(file, shown), shown)
        spec = documents[0] if documents else None
        if not isinstance(spec, dict):
            raise RenderError(f"{shown}: is not a kustomization (a YAML mapping)")
        for field in _BASE_FIELDS:
            for entry in _entries(spec, field, shown):
                pending.extend(_local_folder(root, folder, entry, f"{shown}: {field}"))
        for field in _PLUGIN_FIELDS:
            for entry in _entries(spec, field, shown):
                _check_plugin(root, folder, entry, f"{shown}: {field}")
        chart_homes = _check_helm_charts(root, folder, spec, shown)
        uses_helm = uses_helm or "helmCharts" in spec
        pending.extend(chart_homes)  # walked like every folder kustomize reads
    for real, shown in sorted(readable.items(), key=lambda item: item[1]):
        try:
            text = real.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # not text: kustomize reads it as data, if at all
        _check_yaml_input(text, shown, budget)
    return uses_helm


def _entries(spec: dict[str, Any], field: str, shown: str) -> list[str]:
    value = spec.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise RenderError(f"{shown}: {field} must be a list of strings")
    return value


def _local_folder(root: Path, folder: Path, entry: str, where: str) -> list[Path]:
    """The folder a base entry names (empty for a file), refusing anything not in the repo."""
    if _is_remote(entry):
        raise RenderError(
            f"{where} entry {entry!r} is a remote base; hooksync builds only what is in the "
            "repository — vendor the base into the repository and refer to it by path"
        )
    candidate = folder / entry
    if not candidate.exists():
        raise RenderError(
            f"{where} entry {entry!r} not found in the repository (remote bases are not "
            "supported); fix the path"
        )
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise RenderError(
            f"{where} entry {entry!r} points outside the repository; keep bases in the repository"
        )
    return [resolved] if resolved.is_dir() else []


def _check_plugin(root: Path, folder: Path, entry: str, where: str) -> None:
    if "\n" in entry or entry.lstrip().startswith(("apiVersion", "{")):
        configs = _load_documents(entry, f"{where} inline entry")
    else:
        if _is_remote(entry):
            raise RenderError(f"{where} entry {entry!r} is remote; only local files are allowed")
        candidate = folder / entry
        if not candidate.exists():
            raise RenderError(f"{where} entry {entry!r} not found in the repository; fix the path")
        resolved = candidate.resolve()
        if not resolved.is_relative_to(root):
            raise RenderError(f"{where} entry {entry!r} points outside the repository")
        if resolved.is_dir():
            raise RenderError(
                f"{where} entry {entry!r} is a folder; list builtin plugin configs as files"
            )
        shown = _relative(root, resolved)
        configs = _load_documents(_read_text(resolved, shown), shown)
    for config in configs:
        if config is None:
            continue
        if not isinstance(config, dict):
            raise RenderError(f"{where} entry {entry!r} is not a plugin config (a mapping)")
        annotations = (config.get("metadata") or {}).get("annotations") or {}
        if any(name in annotations for name in _FUNCTION_ANNOTATIONS):
            raise RenderError(
                f"{where} entry {entry!r} configures a KRM function (exec or container); "
                "hooksync runs only kustomize's builtin plugins — render it before committing"
            )
        if config.get("kind") == "HelmChartInflationGenerator":
            raise RenderError(
                f"{where} entry {entry!r} configures HelmChartInflationGenerator; list the chart "
                "under helmCharts instead (local charts only)"
            )
        if config.get("apiVersion") != "builtin":
            raise RenderError(
                f"{where} entry {entry!r} configures an external plugin "
                f"({config.get('apiVersion')}, kind {config.get('kind')}); hooksync runs only "
                "builtin plugins (apiVersion: builtin)"
            )


# --- kustomize's helmCharts --------------------------------------------------------------------


def _check_helm_charts(root: Path, folder: Path, spec: dict[str, Any], shown: str) -> list[Path]:
    """Refuse what would make kustomize's helm inflation leave the repository; return the
    chart home it reads (empty: the kustomization inflates no chart).

    Only local charts: a `repo:` entry is refused, as are chart homes and values files outside
    the repository and a `helmGlobals.configHome` (helm's folders are the Job's own).
    """
    charts = spec.get("helmCharts")
    settings = spec.get("helmGlobals")
    if charts is None and settings is None:
        return []
    settings = {} if settings is None else settings
    if not isinstance(charts, list | None) or not isinstance(settings, dict):
        raise RenderError(f"{shown}: helmCharts must be a list and helmGlobals a mapping")
    if "configHome" in settings:
        raise RenderError(
            f"{shown}: helmGlobals.configHome is not supported; remove it (helm runs with "
            "folders of the Job's own)"
        )
    home = _in_repository(root, folder, settings.get("chartHome", "charts"), f"{shown}: chartHome")
    for index, chart in enumerate(charts or []):
        where = f"{shown}: helmCharts[{index}]"
        if not isinstance(chart, dict):
            raise RenderError(f"{where} must be a mapping")
        if chart.get("repo"):
            raise RenderError(
                f"{where} ({chart.get('name')}) names repo {chart['repo']!r}; hooksync renders "
                "local charts only — vendor the chart under the kustomization's charts/ folder "
                "and drop repo"
            )
        for field in ("valuesFile", "additionalValuesFiles"):
            value = chart.get(field)
            for entry in [value] if isinstance(value, str) else value or []:
                _in_repository(root, folder, entry, f"{where}.{field}")
    return [home] if home.is_dir() else []


def _in_repository(root: Path, folder: Path, entry: Any, where: str) -> Path:
    if not isinstance(entry, str) or "://" in entry:
        raise RenderError(f"{where}: {entry!r} must be a path in the repository")
    resolved = (folder / entry).resolve()
    if not resolved.is_relative_to(root):
        raise RenderError(
            f"{where}: {entry!r} points outside the repository; keep it in the repository"
        )
    return resolved
