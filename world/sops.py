"""SOPS and age for the tests: fresh age keys, and files encrypted with the pinned sops.

The binaries come from `hack/build-binaries sops` (built on first use); `HOOKSYNC_SOPS` names
the sops binary instead, with age-keygen beside it. Nothing encrypted is committed: each test
makes its own key and encrypts its own canary values at run time.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPOSITORY_ROOT / "hack" / "build-binaries"
SOPS_ENV = "HOOKSYNC_SOPS"
# Encrypt only what is secret in a Kubernetes object, as the README recommends.
KUBERNETES_SECRET_FIELDS = "^(data|stringData)$"


@dataclass(frozen=True)
class AgeKey:
    """One age key pair: the identity (the secret half) and its public recipient."""

    identity: str  # age-keygen's whole output, comments included, as a Secret would hold it
    recipient: str


@dataclass(frozen=True)
class SopsTools:
    sops: Path
    age_keygen: Path

    def new_key(self) -> AgeKey:
        """A fresh age key pair, from age-keygen."""
        done = subprocess.run(
            [str(self.age_keygen)], capture_output=True, text=True, check=True, timeout=30
        )
        recipient = next(
            line.split(":", 1)[1].strip()
            for line in done.stdout.splitlines()
            if line.startswith("# public key:")
        )
        return AgeKey(identity=done.stdout, recipient=recipient)

    def encrypt(
        self,
        name: str,
        text: str,
        recipient: str,
        encrypted_regex: str | None = KUBERNETES_SECRET_FIELDS,
    ) -> str:
        """`text` encrypted by sops for `recipient`, as the file `name` (its extension picks
        the format, as it does for sops)."""
        with tempfile.TemporaryDirectory(prefix="hooksync-sops-") as home:
            plain = Path(home) / Path(name).name
            plain.write_text(text)
            argv = [str(self.sops), "encrypt", "--age", recipient]
            if encrypted_regex:
                argv += ["--encrypted-regex", encrypted_regex]
            done = subprocess.run(
                [*argv, str(plain)],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=home,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home},
            )
        if done.returncode != 0:
            raise RuntimeError(f"sops encrypt {name} failed: {done.stderr[-2000:]}")
        return done.stdout


def sops_tools() -> SopsTools:
    """sops and age-keygen: beside `HOOKSYNC_SOPS` when it is set, else from the cache,
    built by `hack/build-binaries sops` if missing (a few minutes the first time)."""
    named = os.environ.get(SOPS_ENV)
    if named:
        sops = Path(named)
    else:
        answer = subprocess.run(
            [str(BUILD_SCRIPT), "sops"], capture_output=True, text=True, cwd=REPOSITORY_ROOT
        )
        if answer.returncode != 0:
            raise RuntimeError(f"hack/build-binaries sops failed:\n{answer.stderr[-3000:]}")
        sops = Path(answer.stdout.strip().splitlines()[-1]) / "sops"
    tools = SopsTools(sops=sops, age_keygen=sops.parent / "age-keygen")
    for binary in (tools.sops, tools.age_keygen):
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"{binary} is missing: run hack/build-binaries sops")
    return tools
