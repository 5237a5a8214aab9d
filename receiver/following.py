"""Objects of one kind in the receiver's namespace, kept in step with the API server: listed
once, then followed by a watch, as Kubernetes controllers' informers do.

At fleet size a list of them on every look is the API server's largest work for the receiver
(seconds for the Jobs of a resync wave), and every look repeats it. Kept, a look costs nothing:
the leader's reporter and the status page read them from memory. Each object is kept slimmed
to what the receiver reads, and while the watch is not following (starting, broken, expired)
`items()` is None and the caller lists instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson
from kubernetes import watch

from receiver.jobapi import API_TIMEOUT, Object

log = logging.getLogger("hooksync.receiver")

# The API server ends a watch after this long; the next one goes on from the last version.
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0
LIST_TIMEOUT_SECONDS = 60.0


def is_newer(obj: Object, than: Object) -> bool:
    """Pure: whether `obj` is a later version of the same object than `than`. Resource
    versions are opaque, but the API server's are etcd revisions, which only grow; where either
    is not a number, the one seen last is taken."""
    mine = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    theirs = str((than.get("metadata") or {}).get("resourceVersion") or "")
    if mine.isdigit() and theirs.isdigit():
        return int(mine) >= int(theirs)
    return True


def without_managed_fields(obj: Object) -> Object:
    """Pure: `obj` without metadata.managedFields, which the receiver never reads."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": metadata}


def follow(
    lister: Callable[..., Any],
    namespace: str,
    selector: str,
    version: str,
    seen: Callable[[str, Object], None],
    going: Callable[[], bool],
) -> None:
    """Watch from `version` (empty: from events for the present state), calling `seen(type,
    object)` for each change, and going on from the last version seen each time the API
    server ends the watch. Returns once `going()` is false; raises when the watch breaks or
    expires (410 Gone)."""
    while going():
        stream = watch.Watch()
        for event in stream.stream(
            lister,
            namespace,
            label_selector=selector,
            resource_version=version or None,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=(API_TIMEOUT[0], WATCH_SECONDS + 30),
            deserialize=False,  # plain dicts, as the rest of the receiver reads them
        ):
            obj = event["object"]
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if event["type"] != "BOOKMARK":
                seen(str(event["type"]), obj)
            if not going():
                stream.stop()
                return


class Followed:
    """The objects `selector` picks, listed with `lister` and followed until `stop`.

    `slim` keeps what the receiver reads of each; `matches` says whether an object is still
    one the selector picks, for versions this replica wrote itself (`remember`): an object that
    left the selector stays known (so an older event cannot bring it back) but is not among the
    items, until the API server's deletion event for it arrives. `changed` runs after every
    change. `derive`, when given, is what a reader would otherwise work out from each object on
    every look: it runs once per version kept, and `derived()` hands the results out by name.
    """

    def __init__(
        self,
        name: str,
        lister: Callable[..., Any],
        namespace: str,
        selector: str,
        stop: threading.Event,
        *,
        slim: Callable[[Object], Object] = without_managed_fields,
        matches: Callable[[Object], bool] = lambda obj: True,
        changed: Callable[[], None] = lambda: None,
        derive: Callable[[Object], Any] | None = None,
    ) -> None:
        self.name = name
        self.lister = lister
        self.namespace = namespace
        self.selector = selector
        self.stop = stop
        self.slim = slim
        self.matches = matches
        self.changed = changed
        self.derive = derive
        self._objects: dict[str, Object] = {}
        self._derived: dict[str, Any] = {}
        self._synced = False
        self._lock = threading.Lock()

    def items(self) -> list[Object] | None:
        """The objects as last seen; None while not following (list them instead)."""
        with self._lock:
            if not self._synced:
                return None
            return [obj for obj in self._objects.values() if self.matches(obj)]

    def get(self, name: str) -> Object | None:
        """The object of that name as last seen; None when not following or not seen."""
        with self._lock:
            found = self._objects.get(name) if self._synced else None
            return found if found is not None and self.matches(found) else None

    def derived(self) -> dict[str, Any] | None:
        """`derive`'s result for each object among the items, by name; None when not
        following (or nothing is derived)."""
        with self._lock:
            if not self._synced or self.derive is None:
                return None
            return {
                name: self._derived[name]
                for name, obj in self._objects.items()
                if name in self._derived and self.matches(obj)
            }

    def remember(self, obj: Object) -> None:
        """`obj` as this replica's own write returned it, which can be newer than the watch's
        last event: a look right after the write must not see the version before it."""
        with self._lock:
            self._keep(obj)

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"follow-{self.name}", daemon=True).start()

    def _keep(self, obj: Object) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        known = self._objects.get(name)
        if known is None and not self.matches(obj):
            return  # gone from the watch already: nothing to keep
        if known is None or is_newer(obj, known):
            slimmed = self.slim(obj)
            self._objects[name] = slimmed
            if self.derive is not None:
                self._derived[name] = self.derive(slimmed)

    def _seen(self, kind: str, obj: Object) -> None:
        with self._lock:
            if kind == "DELETED":
                name = str((obj.get("metadata") or {}).get("name") or "")
                self._objects.pop(name, None)
                self._derived.pop(name, None)
            elif kind in ("ADDED", "MODIFIED"):
                self._keep(obj)
        self.changed()

    def _going(self) -> bool:
        return not self.stop.is_set()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                answer = self.lister(
                    self.namespace,
                    label_selector=self.selector,
                    _preload_content=False,
                    _request_timeout=(API_TIMEOUT[0], LIST_TIMEOUT_SECONDS),
                )
                listed = orjson.loads(answer.data)
                with self._lock:
                    self._objects, self._derived = {}, {}
                    for obj in listed.get("items") or []:
                        self._keep(obj)
                    self._synced = True
                self.changed()
                version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
                follow(self.lister, self.namespace, self.selector, version, self._seen, self._going)
            except Exception as exc:  # dropped or expired: list again
                log.debug(
                    "watch ended",
                    extra={"kind": self.name, "reason": f"{type(exc).__name__}: {exc}"},
                )
            with self._lock:
                self._synced = False
                self._objects, self._derived = {}, {}
            self.stop.wait(RETRY_SECONDS)
