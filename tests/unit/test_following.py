"""What the receiver keeps in step with the API server: the newest version of each object, its
own writes before the watch shows them, and nothing while it is not following."""

from __future__ import annotations

import threading
from typing import Any

from hooksync import names
from receiver.following import Followed, is_newer, without_managed_fields
from receiver.kept import slim_cronjob, slim_job, unreported

REPORTED = {names.REPORTED: names.REPORTED_COMPLETE}


def job(name: str, version: str, **labels: str) -> dict[str, Any]:
    """A Job as the watch or a write returns it, at `version`."""
    return {
        "kind": "Job",
        "metadata": {"name": name, "resourceVersion": version, "labels": labels,
                     "managedFields": [{"manager": "kube-controller-manager"}]},
        "spec": {"suspend": True, "template": {"spec": {"containers": [{"name": "converge"}]}}},
        "status": {"active": 1},
    }  # fmt: skip


def unlisted() -> Followed:
    """A follower of unreported Jobs that has not listed yet (its thread is never started)."""
    return Followed(
        "jobs", lambda *a, **k: None, "hooksync", "", threading.Event(),
        slim=slim_job, matches=unreported,
    )  # fmt: skip


def following(*jobs: dict[str, Any]) -> Followed:
    """The follower once its list returned `jobs`."""
    followed = unlisted()
    for listed in jobs:
        followed._keep(listed)
    followed._synced = True
    return followed


def versions(followed: Followed) -> list[str]:
    return [j["metadata"]["resourceVersion"] for j in followed.items() or []]


def test_nothing_is_known_until_the_list_came_back():
    assert unlisted().items() is None  # the caller lists instead
    assert versions(following(job("a", "10"))) == ["10"]


def test_an_own_write_is_not_undone_by_an_older_event():
    followed = following(job("a", "10"))
    followed.remember(job("a", "12"))
    followed._seen("MODIFIED", job("a", "11"))  # sent before the write, delivered after it
    assert versions(followed) == ["12"]
    followed._seen("MODIFIED", job("a", "13"))
    assert versions(followed) == ["13"]


def test_a_job_this_replica_reported_is_not_brought_back_by_older_events():
    followed = following(job("a", "10"))
    followed.remember(job("a", "12", **REPORTED))
    assert followed.items() == []
    followed._seen("MODIFIED", job("a", "11"))
    assert followed.items() == []
    # The API server sends its leaving the selector as a deletion: forgotten.
    followed._seen("DELETED", job("a", "12", **REPORTED))
    assert followed._objects == {}
    # A reported Job the watch no longer shows is not kept at all.
    followed.remember(job("a", "12", **REPORTED))
    assert followed._objects == {}


def test_a_change_wakes_whoever_waits():
    woken = threading.Event()
    followed = following()
    followed.changed = woken.set
    followed._seen("ADDED", job("b", "5"))
    assert woken.is_set() and versions(followed) == ["5"]


def test_resource_versions_compare_as_numbers_else_the_last_seen_wins():
    assert is_newer(job("a", "9"), job("a", "10")) is False
    assert is_newer(job("a", "10"), job("a", "9")) is True
    assert is_newer(job("a", "x1"), job("a", "10")) is True


def test_what_is_kept_of_a_job_and_a_cronjob():
    kept = slim_job(job("a", "1"))
    assert kept["spec"] == {"suspend": True} and kept["status"] == {"active": 1}
    assert "managedFields" not in kept["metadata"] and kept["metadata"]["name"] == "a"
    cronjob = {"metadata": {"name": "c", "labels": {names.TARGET: "shop"}, "managedFields": []},
               "spec": {"schedule": "H/15 * * * *", "jobTemplate": {"spec": {}}}}  # fmt: skip
    assert slim_cronjob(cronjob) == {
        "metadata": {"name": "c", "labels": {names.TARGET: "shop"}},
        "spec": {"schedule": "H/15 * * * *"},
    }
    assert without_managed_fields({"metadata": {"managedFields": [1], "name": "x"}}) == {
        "metadata": {"name": "x"}
    }


def test_what_is_derived_runs_once_per_version_kept_and_goes_with_the_object():
    seen: list[str] = []

    def derive(obj: dict[str, Any]) -> str:
        seen.append(obj["metadata"]["resourceVersion"])
        assert "template" not in obj["spec"]  # it works on the slimmed object
        return "derived-" + str(obj["metadata"]["resourceVersion"])

    followed = unlisted()
    followed.derive = derive
    assert followed.derived() is None  # not following: the caller works it out itself
    followed._keep(job("a", "10"))
    followed._synced = True
    followed._seen("MODIFIED", job("a", "9"))  # older: neither kept nor derived
    followed._seen("ADDED", job("b", "11"))
    assert followed.derived() == {"a": "derived-10", "b": "derived-11"}
    for _ in range(3):
        followed.derived()
    assert seen == ["10", "11"]
    followed.remember(job("a", "12", **REPORTED))  # left the selector: not among the items
    followed._seen("DELETED", job("b", "11"))
    assert followed.derived() == {}
    assert following(job("c", "1")).derived() is None  # nothing to derive without `derive`
