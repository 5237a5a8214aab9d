"""Validation of Git ref and branch names, after `git check-ref-format`'s rules, and of
repository paths as GitHub and GitLab spell them.

Payload strings are untrusted: a ref or a repository path is used only after it passes here.
"""

from __future__ import annotations

import functools
import re

from hooksync.providers import Provider

_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

# GitHub: owner/name. GitLab: group/subgroup/.../project, no part starting with '-'.
_GITHUB_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_GITLAB_REPO = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+")

MAX_REF_LENGTH = 255
MAX_REPO_PATH_LENGTH = 255


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


@functools.lru_cache(maxsize=1024)  # a webhook's repository arrives over and over
def is_valid_repo_path(provider: Provider, path: str) -> bool:
    """Whether `path` is a repository path of `provider`: owner/name on GitHub,
    group/.../project on GitLab; never '..', at most MAX_REPO_PATH_LENGTH characters."""
    pattern = _GITHUB_REPO if provider == "github" else _GITLAB_REPO
    return len(path) <= MAX_REPO_PATH_LENGTH and ".." not in path and bool(pattern.fullmatch(path))
