"""The inventory contract: ApplySet id, labels, parent ConfigMap and the JSON record."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import pytest

from hooksync.inventory import (
    APPLYSET_CONTAINS_GROUP_KINDS,
    APPLYSET_ID,
    APPLYSET_TOOLING,
    DATA_KEY,
    InventoryError,
    InventoryRecord,
    ObjectRef,
    applyset_id,
    contains_group_kinds,
    decode_inventory,
    encode_inventory,
    fingerprint,
    inventory_labels,
    parent_configmap,
    parent_name,
)
from hooksync.names import APPLYSET_PART_OF, INVENTORY_TARGET

DEPLOYMENT = ObjectRef("apps", "v1", "Deployment", "shop", "web", "uid-1")
SERVICE = ObjectRef("", "v1", "Service", "shop", "web", "uid-2")


def test_applyset_id_follows_the_spec_formula() -> None:
    # ApplySet spec: base64url(sha256("<name>.<namespace>.<kind>.<group>")), unpadded.
    digest = hashlib.sha256(b"hooksync-inventory-shop.shop-prod.ConfigMap.").digest()
    expected = "applyset-" + base64.urlsafe_b64encode(digest).decode().replace("=", "") + "-v1"

    assert applyset_id("shop", "shop-prod") == expected


def test_applyset_id_is_a_valid_label_value_and_differs_per_target_and_namespace() -> None:
    ids = {applyset_id(t, ns) for t in ("shop", "blog") for ns in ("a", "b")}

    assert len(ids) == 4
    for value in ids:
        assert len(value) <= 63
        assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", value)


def test_inventory_labels_carry_the_id_and_the_target() -> None:
    assert inventory_labels("shop", "shop") == {
        APPLYSET_PART_OF: applyset_id("shop", "shop"),
        INVENTORY_TARGET: "shop",
    }


def test_record_round_trips_through_configmap_data() -> None:
    record = InventoryRecord(sha="a" * 40, objects=(SERVICE, DEPLOYMENT))

    data = encode_inventory(record)
    again = decode_inventory(data)

    assert set(data) == {DATA_KEY}
    assert again.sha == "a" * 40
    assert set(again.objects) == {SERVICE, DEPLOYMENT}
    assert json.loads(data[DATA_KEY])["objects"][0]["kind"] in ("Deployment", "Service")


def test_encoding_is_stable_whatever_the_order() -> None:
    one = encode_inventory(InventoryRecord("b" * 40, (SERVICE, DEPLOYMENT)))
    two = encode_inventory(InventoryRecord("b" * 40, (DEPLOYMENT, SERVICE)))

    assert one == two


def test_no_data_is_an_empty_record() -> None:
    assert decode_inventory(None) == InventoryRecord(sha=None, objects=())
    assert decode_inventory({}) == InventoryRecord(sha=None, objects=())


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"version": 1}',
        '{"version": 99, "objects": []}',
        '{"version": 1, "objects": [{"kind": "Service"}]}',
    ],
)
def test_malformed_data_is_an_error_not_an_empty_record(text: str) -> None:
    with pytest.raises(InventoryError):
        decode_inventory({DATA_KEY: text})


def test_contains_group_kinds_is_sorted_and_unique() -> None:
    refs = [DEPLOYMENT, SERVICE, ObjectRef("apps", "v1", "Deployment", "shop", "api")]

    assert contains_group_kinds(refs) == "Deployment.apps,Service"


def test_parent_configmap_is_an_applyset_parent() -> None:
    record = InventoryRecord("c" * 40, (DEPLOYMENT, SERVICE))

    parent = parent_configmap("shop", "shop-ns", record)

    assert parent["kind"] == "ConfigMap" and parent["apiVersion"] == "v1"
    assert parent["metadata"]["name"] == parent_name("shop") == "hooksync-inventory-shop"
    assert parent["metadata"]["namespace"] == "shop-ns"
    assert parent["metadata"]["labels"][APPLYSET_ID] == applyset_id("shop", "shop-ns")
    annotations = parent["metadata"]["annotations"]
    assert annotations[APPLYSET_TOOLING] == "hooksync/v1"
    assert annotations[APPLYSET_CONTAINS_GROUP_KINDS] == "Deployment.apps,Service"
    assert decode_inventory(parent["data"]) == decode_inventory(encode_inventory(record))


def test_object_ref_from_a_live_object() -> None:
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "uid-1"},
    }

    ref = ObjectRef.from_object(live)

    assert ref == DEPLOYMENT
    assert ref.api_version == "apps/v1"
    assert str(ref) == "Deployment/web"
    assert (
        ObjectRef.from_object({"apiVersion": "v1", "kind": "Service", "metadata": {}}).group == ""
    )


# --- fingerprints: what a resync compares instead of fetching ---------------------------------

METADATA: dict[str, Any] = {
    "name": "settings",
    "namespace": "shop",
    "uid": "u-1",
    "resourceVersion": "10",
    "generation": 1,
    "creationTimestamp": "2025-03-10T12:00:00Z",
    "managedFields": [{"manager": "hooksync"}],
    "labels": {"app": "shop"},
}
LIVE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": METADATA,
    "data": {"version": "v1"},
    "status": {},
}


def test_a_fingerprint_ignores_status_and_the_servers_bookkeeping():
    moved = {
        **LIVE,
        "status": {"observed": 2},
        "metadata": {
            **METADATA,
            "resourceVersion": "11",
            "generation": 2,
            "managedFields": [{"manager": "kubelet"}],
        },
    }
    assert fingerprint(moved) == fingerprint(LIVE)
    listed = {key: value for key, value in LIVE.items() if key not in ("apiVersion", "kind")}
    assert fingerprint(listed) == fingerprint(LIVE)  # list items carry no kind


@pytest.mark.parametrize(
    "edit",
    [
        {"data": {"version": "v2"}},
        {"metadata": {**METADATA, "labels": {"app": "other"}}},
        {"metadata": {**METADATA, "annotations": {"note": "by hand"}}},
        {"spec": {"replicas": 3}},
    ],
)
def test_any_edit_outside_status_changes_the_fingerprint(edit: dict[str, object]):
    assert fingerprint({**LIVE, **edit}) != fingerprint(LIVE)


def test_fingerprints_round_trip_and_a_damaged_set_only_costs_a_full_resync():
    ref = ObjectRef("", "v1", "ConfigMap", "shop", "settings", "u-1")
    record = InventoryRecord(sha="a" * 40, objects=(ref,), fingerprints={"u-1": "f" * 64})
    assert decode_inventory(encode_inventory(record)) == record
    document = json.loads(encode_inventory(record)[DATA_KEY])
    document["fingerprints"] = {"u-1": 5}
    damaged = decode_inventory({DATA_KEY: json.dumps(document)})
    assert damaged.fingerprints == {} and damaged.objects == (ref,)
    without = InventoryRecord(sha="a" * 40, objects=(ref,))
    assert "fingerprints" not in encode_inventory(without)[DATA_KEY]
