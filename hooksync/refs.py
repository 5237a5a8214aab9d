"""Validation of Git ref and branch names, after `git check-ref-format`'s rules.

Payload strings are untrusted: a ref is used only after it passes here.
"""

import functools
import re

_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

MAX_REF_LENGTH = 255


@functools.lru_cache(maxsize=4096)  # a handful of refs arrive over and over
def is_valid_ref_name(ref: str) -> bool:
    """Whether `ref` is a well-formed Git ref name (for example refs/heads/main)."""
    if not ref or len(ref.encode("utf-8", "surrogatepass")) > MAX_REF_LENGTH:
        return False
    if _FORBIDDEN_CHARS.search(ref):
        return False
    if ref.startswith("/") or ref.endswith("/") or ref.endswith(".") or ref.startswith("-"):
        return False
    if ".." in ref or "//" in ref or "@{" in ref or ref == "@":
        return False
    for component in ref.split("/"):
        if component.startswith(".") or component.endswith(".lock"):
            return False
    return True


def is_valid_branch_name(branch: str) -> bool:
    """Whether `branch` is usable as refs/heads/<branch>."""
    return is_valid_ref_name(branch) and is_valid_ref_name("refs/heads/" + branch)


def is_valid_sha(sha: str) -> bool:
    """Whether `sha` is a full lower-case SHA-1 or SHA-256 object name."""
    return bool(_SHA.fullmatch(sha))
