"""The namespace a target converges must enforce Pod Security `baseline` or `restricted`.

Whoever can push to the target's branch can ask for any Pod the target's Role allows. Without
Pod Security admission that includes a privileged DaemonSet with hostPID and a hostPath of `/`:
root on the node, and from there every other target's credentials. `baseline` refuses those.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from jobimage.errors import PermanentError

ENFORCE_LABEL: Final = "pod-security.kubernetes.io/enforce"
# Levels from least to most strict; an unlabelled namespace enforces `privileged`.
LEVELS: Final = ("privileged", "baseline", "restricted")
MINIMUM: Final = "baseline"
OPT_OUT_FIELD: Final = "allowUnenforcedPodSecurity"  # the target's configuration field


def check_pod_security(namespace: str, labels: Mapping[str, str]) -> str:
    """Pure: the level `namespace` enforces; PermanentError when it is below `baseline`."""
    level = labels.get(ENFORCE_LABEL, "privileged")
    if level in LEVELS and LEVELS.index(level) >= LEVELS.index(MINIMUM):
        return level
    found = f"enforces {level!r}" if level in LEVELS else f"has {ENFORCE_LABEL}={level!r}"
    raise PermanentError(
        f"namespace {namespace!r} {found}, so a push could run privileged Pods; label it "
        f"`kubectl label namespace {namespace} {ENFORCE_LABEL}=restricted` (or =baseline), or "
        f"set {OPT_OUT_FIELD}: true on the target to accept that risk"
    )
