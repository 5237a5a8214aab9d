"""Fetch one commit of the target's repository: the branch head, or an exact SHA for previews.

Credentials reach git through its environment (GIT_CONFIG_* and GIT_SSH_COMMAND), never argv,
and every message that leaves this module has them removed.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hooksync.jobspec import JobSpec
from jobimage.errors import PermanentError, TransientError

GIT_TIMEOUT_SECONDS = int(os.environ.get("HOOKSYNC_GIT_TIMEOUT_SECONDS", "300"))
# What git prints when the disk under the checkout is full (ENOSPC).
_DISK_FULL = os.strerror(errno.ENOSPC).lower()  # "no space left on device"
DISK_LIMIT_FIELD = "jobDiskLimit"  # the configuration field that sizes the Job's disk


@dataclass(frozen=True)
class GitCredentials:
    """An HTTPS token, or an SSH deploy key with its known_hosts, from the mounted Secret."""

    token: str | None = None
    username: str = "x-access-token"
    ssh_key: Path | None = None
    known_hosts: Path | None = None

    @classmethod
    def load(cls, folder: str | None, environ: dict[str, str] | None = None) -> GitCredentials:
        """From the mounted Secret folder (`token`, or `ssh-privatekey` + `known_hosts`), else
        from HOOKSYNC_GIT_TOKEN; no credentials at all for public repositories."""
        env = dict(os.environ if environ is None else environ)
        if folder:
            base = Path(folder)
            username = _read(base / "username") or "x-access-token"
            token = _read(base / "token")
            if token:
                return cls(token=token, username=username)
            if (base / "ssh-privatekey").is_file():
                known_hosts = base / "known_hosts"
                if not known_hosts.is_file():
                    raise PermanentError(
                        f"{folder}: ssh-privatekey needs a known_hosts key beside it, so the "
                        "server's identity can be checked"
                    )
                return cls(ssh_key=base / "ssh-privatekey", known_hosts=known_hosts)
        token = env.get("HOOKSYNC_GIT_TOKEN")
        return cls(token=token) if token else cls()

    def secrets(self) -> list[str]:
        if not self.token:
            return []
        basic = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        return [self.token, basic]


@dataclass(frozen=True)
class Checkout:
    """A working tree at exactly one commit."""

    directory: Path
    sha: str


def fetch(
    clone_url: str,
    branch: str,
    sha: str | None,
    directory: Path,
    credentials: GitCredentials,
) -> Checkout:
    """Shallow-fetch `sha` (when given) or the head of `branch` into `directory`."""
    if urlsplit(clone_url).username or urlsplit(clone_url).password:
        raise PermanentError(
            "clone URL carries credentials; put the token in the target's gitSecret instead"
        )
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    env = _git_environment(credentials, directory)
    what = sha if sha else f"refs/heads/{branch}"
    _git(["init", "--quiet", str(directory)], env, credentials, directory.parent)
    result = _git(
        ["fetch", "--quiet", "--depth=1", "--no-tags", "--", clone_url, what],
        env,
        credentials,
        directory,
        check=False,
    )
    if result.returncode != 0:
        raise _fetch_error(result.stderr, clone_url, branch, sha, credentials)
    _git(["checkout", "--quiet", "--detach", "FETCH_HEAD"], env, credentials, directory)
    head = _git(["rev-parse", "HEAD"], env, credentials, directory).stdout.strip()
    return Checkout(directory=directory, sha=head)


class PendingFetch:
    """A `fetch` started at once in a thread of its own, so git works while the Job's process
    is still importing, taking the Lease and checking the namespace; `result` waits for it.

    A fetch writes nothing but its own checkout, so it needs no Lease. The thread is a daemon:
    a Job that stops before it needs the checkout (Lease held, a permanent error) does not wait
    for git.
    """

    def __init__(
        self,
        clone_url: str,
        branch: str,
        sha: str | None,
        directory: Path,
        credentials: GitCredentials,
    ) -> None:
        self._checkout: Checkout | None = None
        self._error: BaseException | None = None
        work = functools.partial(fetch, clone_url, branch, sha, directory, credentials)
        self._thread = threading.Thread(target=self._run, args=(work,), name="fetch", daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], Checkout]) -> None:
        try:
            self._checkout = work()
        except BaseException as exc:  # handed to whoever waits, raised there unchanged
            self._error = exc

    def result(self) -> Checkout:
        """The checkout, or the fetch's own error, as `fetch` would have returned or raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._checkout is not None
        return self._checkout


def fetch_sha(spec: JobSpec) -> str | None:
    """Pure: the commit to fetch, None for the branch head. Only a preview checks an exact
    commit; apply and resync take the branch head as it is now, so a stale --sha can never roll
    the namespace back (design rule 1)."""
    return spec.sha if spec.mode == "preview" else None


def start_fetch(spec: JobSpec, workdir: Path, credentials: GitCredentials) -> PendingFetch | None:
    """Start the fetch step's git work now, for an apply or a preview; None for a resync, which
    first asks whether the head moved at all."""
    if spec.mode == "resync":
        return None
    return PendingFetch(spec.clone_url, spec.branch, fetch_sha(spec), workdir / "repo", credentials)


def remote_head(clone_url: str, branch: str, directory: Path, credentials: GitCredentials) -> str:
    """The SHA `branch` points at on the remote (`git ls-remote`), without fetching anything:
    what a resync needs to know whether the head moved. `directory` holds git's home."""
    if urlsplit(clone_url).username or urlsplit(clone_url).password:
        raise PermanentError(
            "clone URL carries credentials; put the token in the target's gitSecret instead"
        )
    directory.mkdir(parents=True, exist_ok=True)
    env = _git_environment(credentials, directory)
    ref = f"refs/heads/{branch}"
    result = _git(
        ["ls-remote", "--", clone_url, ref], env, credentials, directory.parent, check=False
    )
    if result.returncode != 0:
        raise _fetch_error(result.stderr, clone_url, branch, None, credentials)
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha.strip()
    raise PermanentError(f"branch {branch!r} not found in {clone_url}")


def _git_environment(credentials: GitCredentials, directory: Path) -> dict[str, str]:
    home = directory.parent / ".git-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "LANG": "C",
    }
    # Only the transports a clone URL may name; no ext:: or file:: tricks from a config typo.
    config: list[tuple[str, str]] = [
        ("protocol.allow", "never"),
        ("protocol.https.allow", "always"),
        ("protocol.http.allow", "always"),
        ("protocol.ssh.allow", "always"),
    ]
    if credentials.token:
        basic = base64.b64encode(f"{credentials.username}:{credentials.token}".encode()).decode()
        config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (name, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = name
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    if credentials.ssh_key is not None and credentials.known_hosts is not None:
        # A mounted Secret file may be group-readable, which ssh refuses; use a private copy.
        key_file = home / "id"
        key_file.write_bytes(credentials.ssh_key.read_bytes())
        key_file.chmod(0o600)
        env["GIT_SSH_COMMAND"] = (
            f"ssh -i {key_file} -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o UserKnownHostsFile={credentials.known_hosts} -o StrictHostKeyChecking=yes"
        )
    return env


def _git(
    args: list[str],
    env: dict[str, str],
    credentials: GitCredentials,
    cwd: Path,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run git in a process group of its own, so a timeout ends its helpers too.

    `git fetch` over HTTP runs git-remote-http, which would outlive a killed git and keep the
    connection (and the Job's memory) busy.
    """
    try:
        process = subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise PermanentError("git is not installed in the Job image") from None
    try:
        stdout, stderr = process.communicate(timeout=GIT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise TransientError(f"git {args[0]} took longer than {GIT_TIMEOUT_SECONDS}s") from None
    finally:
        _end_group(process)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if _DISK_FULL in stderr.lower():
        raise PermanentError(
            f"git {args[0]}: no space left on device in {cwd}: the checkout does not fit the "
            f"Job's disk; keep large files out of the repository, or raise {DISK_LIMIT_FIELD} "
            "in the configuration"
        )
    if check and result.returncode != 0:
        raise TransientError(f"git {args[0]} failed: {redact(result.stderr, credentials)}")
    return result


def _end_group(process: subprocess.Popen[str]) -> None:
    """Kill whatever is left of git's process group (nothing, when git ended on its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None:
        process.communicate()


def _fetch_error(
    stderr: str, url: str, branch: str, sha: str | None, credentials: GitCredentials
) -> Exception:
    text = redact(stderr, credentials).strip()
    last = text.splitlines()[-1] if text else "no output"
    lowered = text.lower()
    missing_object = ("not our ref", "unadvertised object", "couldn't find remote ref")
    if sha and any(words in lowered for words in missing_object):
        return PermanentError(f"commit {sha} not found in {url}; was the branch force-pushed?")
    if "couldn't find remote ref" in lowered:
        return PermanentError(f"branch {branch!r} not found in {url}")
    if (
        "authentication failed" in lowered
        or "could not read username" in lowered
        or ("403" in lowered and "forbidden" in lowered)
    ):
        return PermanentError(
            f"git fetch from {url}: authentication failed; check the token in the target's "
            "gitSecret (or HOOKSYNC_GIT_TOKEN)"
        )
    if "repository" in lowered and "not found" in lowered:
        return PermanentError(f"repository {url} not found (or the token cannot read it)")
    return TransientError(f"git fetch from {url} failed: {last}")


def redact(text: str, credentials: GitCredentials) -> str:
    """`text` with every credential string replaced by '***'."""
    for secret in credentials.secrets():
        text = text.replace(secret, "***")
    return text


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
