"""Watches that stamp each event with the wall clock when it arrived: when a change was seen.

Kubernetes' own timestamps have whole-second resolution, too coarse for a push path measured
in tenths of a second; an event's arrival time is what the benchmarks compare instead.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import watch


@dataclass
class Seen:
    """One watch event: when it arrived (time.time()), what was watched, and the object."""

    at: float
    kind: str
    obj: dict[str, Any]


# (a name for what is watched, a list function the watch can stream, its positional args)
Source = tuple[str, Callable[..., Any], tuple[Any, ...]]


class Watches:
    """One thread per source, recording every event as a `Seen` with the object as JSON."""

    def __init__(self, sources: list[Source]) -> None:
        self.events: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=source, name=f"watch-{source[0]}", daemon=True)
            for source in sources
        ]

    def start(self) -> Watches:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Watches:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def since(self, moment: float, kind: str) -> list[Seen]:
        """The events of `kind` that arrived at or after `moment`, oldest first."""
        with self._lock:
            return [e for e in self.events if e.at >= moment and e.kind == kind]

    def first(
        self, moment: float, kind: str, test: Callable[[dict[str, Any]], bool]
    ) -> Seen | None:
        """The first event of `kind` since `moment` whose object passes `test`."""
        return next((e for e in self.since(moment, kind) if test(e.obj)), None)

    def wait(
        self, moment: float, kind: str, test: Callable[[dict[str, Any]], bool], timeout: float
    ) -> Seen:
        """Block until `first` finds one; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (found := self.first(moment, kind, test)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind} event as expected within {timeout:.0f} s")
            time.sleep(0.02)
        return found

    def _run(self, kind: str, lister: Callable[..., Any], args: tuple[Any, ...]) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    listing = lister(*args, _preload_content=False)
                    version = _list_version(listing.data)
                for event in watch.Watch().stream(
                    lister, *args, resource_version=version, timeout_seconds=2, deserialize=False
                ):
                    raw = event["object"]
                    version = raw["metadata"]["resourceVersion"]
                    with self._lock:
                        self.events.append(Seen(time.time(), kind, raw))
                    if self._stop.is_set():
                        return
            except Exception:
                version = ""  # 410 Gone or a dropped connection: list again
                self._stop.wait(0.2)


def _list_version(data: bytes) -> str:
    return str(json.loads(data)["metadata"]["resourceVersion"])
