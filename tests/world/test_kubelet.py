"""The process kubelet's pure parts: which API answers a pod waits out, and its mount script,
which makes what it can before the pod's mount namespace exists, so the script starts as few
processes as it can."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from world.kubelet import _mount_script, _not_yet_or, _NotYet


@pytest.mark.parametrize(("status", "waits"), [(429, True), (500, True), (503, True),
                                              (403, False), (422, False)])  # fmt: skip
def test_a_throttled_or_failing_api_server_is_waited_out(status: int, waits: bool) -> None:
    answer = _not_yet_or(ApiException(status=status, reason="x"))
    assert isinstance(answer, _NotYet) is waits
    assert waits or isinstance(answer, ApiException)


def test_only_what_a_volume_hides_is_made_by_the_script(tmp_path: Path) -> None:
    pod = tmp_path / "pod"
    (pod / "volumes" / "tmp").mkdir(parents=True)
    (pod / "volumes" / "cfg").mkdir(parents=True)
    (pod / "termination-log").write_bytes(b"")
    root, stage = tmp_path / "root", tmp_path / "stage"
    keep = root / "tmp" / "project"  # a preserved folder under a volume's mountPath
    mounts = [
        (pod / "volumes" / "tmp", str(root / "tmp")),
        (pod / "volumes" / "cfg", str(root / "tmp" / "cfg")),  # lands inside the one above
        (pod / "termination-log", str(root / "dev" / "termination-log")),
    ]
    script = _mount_script(pod, stage, mounts, [keep])
    # Made here: the staging point, the folder set aside, and what no earlier mount hides.
    assert stage.is_dir() and (pod / ".keep" / "0").is_dir()
    assert (root / "tmp").is_dir() and (root / "dev" / "termination-log").is_file()
    # Made inside the namespace, on top of the volume: never here.
    assert not (root / "tmp" / "cfg").exists()
    made = [line for line in script if line.startswith("mkdir")]
    assert made == [f"mkdir -p {root / 'tmp' / 'cfg'}", f"mkdir -p {keep}"]
    bound = [line.split()[-1] for line in script if line.startswith("mount")]
    assert bound == [
        str(stage),
        str(stage / ".keep" / "0"),
        str(root / "tmp"),
        str(root / "tmp" / "cfg"),
        str(root / "dev" / "termination-log"),
        str(keep),
    ]
