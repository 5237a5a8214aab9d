"""The demo app's commits, read from `demo-app/`: one folder per commit, each the whole of the
repository's `deploy/` at that commit (see demo-app/README.md). `make demo` and
`hack/e2e-kind.sh` both commit these files, so the two scenarios cannot drift apart."""

from __future__ import annotations

from pathlib import Path

DEMO_APP = Path(__file__).with_name("demo-app")
APP, CHANGE, PULL_REQUEST = "1-app", "2-change", "3-pull-request"


def app_files(step: str, path: str = "deploy") -> dict[str, str | None]:
    """What to commit for `step`: each manifest of its folder under `path`, and None (delete)
    for each manifest that another step has and this one lacks."""
    folder = DEMO_APP / step
    if not folder.is_dir():
        steps = ", ".join(sorted(p.name for p in DEMO_APP.iterdir() if p.is_dir()))
        raise ValueError(f"no demo app step {step!r} in {DEMO_APP}; the steps are {steps}")
    every = {manifest.name for manifest in DEMO_APP.glob("*/*.yaml")}
    present = {manifest.name: manifest.read_text() for manifest in folder.glob("*.yaml")}
    return {f"{path}/{name}": present.get(name) for name in sorted(every)}
