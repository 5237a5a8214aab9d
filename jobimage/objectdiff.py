"""What server-side apply would change in one object, as a unified diff of YAML.

Both sides are cut down to the fields hooksync's field manager owns (its managedFields entry,
fieldsV1, in the apply answer and in the live object), so status, server-set metadata,
defaults and the fields other managers own never show. Secret values never appear: a Secret
shows only which keys of its data were added, removed or changed.

Pure: objects in, text out; nothing here talks to Kubernetes.
"""

from __future__ import annotations

import base64
import copy
import difflib
import json
from collections.abc import Mapping
from typing import Any, Final

import yaml

from hooksync.diffs import ObjectDiff, Would
from hooksync.inventory import group_of
from hooksync.names import FIELD_MANAGER

# What a Secret's value reads as in a diff: which keys changed, never what they hold.
HIDDEN: Final = "(hidden)"
HIDDEN_CHANGED: Final = "(hidden, changed)"
# kubectl's client-side apply copies the whole object, a Secret's values too, into this
# annotation; on a Secret it is hidden like a value.
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"

FieldSet = dict[str, Any]  # a fieldsV1 tree: "f:name", "k:{...}", "v:...", "i:N", "." keys


def object_diff(
    name: str,
    desired: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    answer: Mapping[str, Any],
    field_manager: str = FIELD_MANAGER,
) -> ObjectDiff:
    """Pure: what applying `desired` would do to `live`, from the API server's `answer` to a
    (dry-run) server-side apply. A new object shows `desired` as an all-added diff.

    Compared are the fields `field_manager` owns in `answer` or in `live`: the ones it sets
    now, and the ones it set before and may be removing."""
    if live is None:
        return ObjectDiff(name, "create", unified(name, None, _hidden_manifest(desired)))
    fields = merge_fields(owned_fields(answer, field_manager), owned_fields(live, field_manager))
    if not fields:
        # No managedFields to go by (an older server, or a manager that strips them): compare
        # what Git sets, which misses nothing hooksync changes.
        fields = fields_of(desired)
    secret = is_secret(answer)
    if secret:
        fields = _secret_fields(fields)
    before, after = project(live, fields), project(answer, fields)
    if secret:
        before, after = hide_secret_values(before, after)
    text = unified(name, before, after)
    would: Would = "change" if text else "unchanged"
    return ObjectDiff(name, would, text)


def unified(name: str, before: Any, after: Any) -> str:
    """Pure: the unified diff between the YAML of `before` and `after` (None: no object);
    empty when they read the same."""
    old = to_yaml(before).splitlines(keepends=True) if before is not None else []
    new = to_yaml(after).splitlines(keepends=True) if after is not None else []
    if old == new:
        return ""
    lines = difflib.unified_diff(
        old,
        new,
        fromfile=f"{name} (live)" if before is not None else f"{name} (not in the cluster)",
        tofile=f"{name} (after apply)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# --- the fields hooksync owns ------------------------------------------------------------------


def owned_fields(obj: Mapping[str, Any], field_manager: str = FIELD_MANAGER) -> FieldSet:
    """Pure: the fieldsV1 tree of every Apply entry of `field_manager` in `obj`'s
    managedFields, merged (one per API version it applied with)."""
    owned: FieldSet = {}
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(entry, Mapping) or entry.get("manager") != field_manager:
            continue
        if entry.get("operation") not in (None, "Apply"):
            continue
        fields = entry.get("fieldsV1")
        if isinstance(fields, Mapping):
            owned = merge_fields(owned, fields)
    return owned


def merge_fields(left: Mapping[str, Any], right: Mapping[str, Any]) -> FieldSet:
    """Pure: the union of two fieldsV1 trees."""
    merged: FieldSet = {key: copy.deepcopy(value) for key, value in left.items()}
    for key, value in right.items():
        if isinstance(merged.get(key), Mapping) and isinstance(value, Mapping):
            merged[key] = merge_fields(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def fields_of(obj: Mapping[str, Any]) -> FieldSet:
    """Pure: a fieldsV1 tree naming every field `obj` sets (lists taken whole)."""
    fields: FieldSet = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k in ("labels", "annotations")}
            if not value:
                continue
        fields[f"f:{key}"] = fields_of(value) if isinstance(value, Mapping) and value else {}
    return fields


def project(value: Any, fields: Mapping[str, Any]) -> Any:
    """Pure: the parts of `value` that the fieldsV1 tree `fields` names. A leaf ({}) takes
    the whole value; list items are found by their key ("k:"), value ("v:") or index ("i:")
    and keep their order in `value`."""
    if not fields:
        return copy.deepcopy(value)
    if isinstance(value, Mapping):
        projected: dict[str, Any] = {}
        for key, sub in fields.items():
            if key.startswith("f:") and key[2:] in value:
                projected[key[2:]] = project(value[key[2:]], sub)
        return projected
    if isinstance(value, list):
        return [
            _project_item(index, item, fields)
            for index, item in enumerate(value)
            if _item_fields(index, item, fields) is not None
        ]
    return copy.deepcopy(value)


def _project_item(index: int, item: Any, fields: Mapping[str, Any]) -> Any:
    found = _item_fields(index, item, fields)
    assert found is not None
    key, sub = found
    projected = project(item, sub)
    # The key fields say which item this is, even when only the item itself is owned.
    if isinstance(projected, dict) and isinstance(key, dict):
        projected = {**key, **projected}
    return projected


def _item_fields(index: int, item: Any, fields: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """The (key, subtree) of `fields` that names this list item, or None."""
    for name, sub in fields.items():
        kind, _, text = name.partition(":")
        if kind == "i" and text == str(index):
            return None, sub
        if kind not in ("k", "v"):
            continue
        try:
            wanted = json.loads(text)
        except ValueError:
            continue
        if kind == "v" and wanted == item:
            return None, sub
        if (
            kind == "k"
            and isinstance(wanted, dict)
            and isinstance(item, Mapping)
            and all(item.get(k) == v for k, v in wanted.items())
        ):
            return wanted, sub
    return None


# --- Secrets -----------------------------------------------------------------------------------


def is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and group_of(str(obj.get("apiVersion", ""))) == ""


def _secret_fields(fields: Mapping[str, Any]) -> FieldSet:
    """The API server keeps stringData as data: owning a stringData key means its data key."""
    moved: FieldSet = {key: value for key, value in fields.items() if key != "f:stringData"}
    string_data = fields.get("f:stringData")
    if isinstance(string_data, Mapping):
        moved["f:data"] = merge_fields(moved.get("f:data") or {}, string_data)
    return moved


def _secret_data(obj: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's values as the server keeps them (base64 `data`, stringData encoded)."""
    data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
    for key, value in (obj.get("stringData") or {}).items():
        data[str(key)] = base64.b64encode(str(value).encode()).decode()
    return data


def hide_secret_values(before: Any, after: Any) -> tuple[Any, Any]:
    """Pure: two sides of a Secret with every value replaced: HIDDEN, or HIDDEN_CHANGED on
    the new side of a key whose value changes. Only which keys differ is left to see."""
    old, new = _secret_data(before or {}), _secret_data(after or {})
    changed = {key for key, value in new.items() if old.get(key, value) != value}
    return (
        _with_hidden(before, {key: HIDDEN for key in old}),
        _with_hidden(after, {key: HIDDEN_CHANGED if key in changed else HIDDEN for key in new}),
    )


def _hidden_manifest(obj: Mapping[str, Any]) -> Any:
    if not is_secret(obj):
        return copy.deepcopy(dict(obj))
    return _with_hidden(obj, {key: HIDDEN for key in _secret_data(obj)})


def _with_hidden(obj: Any, data: dict[str, str]) -> Any:
    if not isinstance(obj, Mapping):
        return obj
    shown = {key: copy.deepcopy(value) for key, value in obj.items() if key != "stringData"}
    if data or "data" in obj or "stringData" in obj:
        shown["data"] = dict(sorted(data.items()))
    annotations = (shown.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = HIDDEN
    return shown


# --- YAML --------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style for text with line breaks (a ConfigMap's files), so a diff shows lines."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(value: Any) -> str:
    """Pure: `value` as YAML, keys sorted (as kubectl prints objects), lines never folded."""
    return yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=2**31 - 1,
    )
