"""Decrypt step: SOPS-encrypted files below the target's path, decrypted in place with the
target's age identities before kustomize (or anything else) reads them.

A file is SOPS-encrypted when it carries sops' metadata: a top-level `sops` mapping in YAML or
JSON, `sops_mac=` in a dotenv file, a `[sops]` section in an ini file. Only age recipients are
decrypted; the identities come from the files ending in `.agekey` in the folder where the Job
mounts the target's decryption Secret (`--decryption-keys`).

Where the plaintext lives: in the checkout only, which for a target with decryption is on the
Job's memory-backed /tmp (receiver/dispatch/manifests.py), removed when the Job ends. Messages
name files, never their content; sops' own output is never passed on, and `Plaintext.scrub`
takes every decrypted value out of a later step's error message (kustomize quotes its input).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

import yaml

from jobimage.errors import PermanentError, TransientError

SOPS_ENV: Final = "HOOKSYNC_SOPS"
SOPS_TIMEOUT_SECONDS: Final = 60
# sops' exit codes (cmd/sops/codes) for a tampered file and for a file no key can open.
SOPS_MAC_MISMATCH: Final = 51
SOPS_NO_KEY: Final = 128
KEY_SUFFIX: Final = ".agekey"
IDENTITY_PREFIX: Final = "AGE-SECRET-KEY-1"
# An encrypted file is read whole into memory; a Kubernetes object is at most 1.5 MiB.
MAX_ENCRYPTED_BYTES: Final = 8 * 1024 * 1024
# Decrypted values shorter than this are not scrubbed from messages: they would black out
# ordinary words ("v1", "true"). Keep short values out of encrypted files or accept that.
MIN_SCRUBBED_CHARS: Final = 4
REDACTED: Final = "[redacted]"

Format = Literal["yaml", "json", "dotenv", "ini"]
_FORMATS: Final[dict[str, Format]] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".env": "dotenv",
    ".ini": "ini",
}
_MARKERS: Final[dict[Format, re.Pattern[str]]] = {
    "yaml": re.compile(r"^sops:[ \t]*$", re.MULTILINE),
    "json": re.compile(r'"sops"\s*:\s*\{'),
    "dotenv": re.compile(r"^sops_mac=", re.MULTILINE),
    "ini": re.compile(r"^\[sops\][ \t]*$", re.MULTILINE),
}
# sops writes an age recipient as `recipient: age1...` (YAML), `"recipient": "age1..."`
# (JSON), `..._recipient=age1...` (dotenv) or `..._recipient = age1...` (ini).
_AGE_RECIPIENT: Final = re.compile(r"""recipient["']?\s*[:=]\s*["']?age1[0-9a-z]+""")
_ENCRYPTED_VALUE: Final = re.compile(r"^ENC\[[A-Z0-9_]+,data:")


@dataclass(frozen=True)
class EncryptedFile:
    """One SOPS-encrypted file of the checkout: `shown` is its path inside the repository."""

    shown: str
    path: Path
    format: Format


@dataclass
class Plaintext:
    """What the decrypt step produced: the files it decrypted (by path inside the repository)
    and the decrypted values, so that no message can carry one."""

    files: list[str] = field(default_factory=list)
    values: set[str] = field(default_factory=set)

    def scrub(self, text: str) -> str:
        """Pure: `text` with every decrypted value (longest first) replaced by REDACTED."""
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


# --- pure parts -------------------------------------------------------------------------------


def sops_format(name: str, text: str) -> Format | None:
    """Pure: the format sops reads the file `name` as, when `text` is SOPS-encrypted; None for
    any other file (sops picks the format by extension, so hooksync does too)."""
    fmt = _FORMATS.get(PurePosixPath(name).suffix.lower())
    if fmt is None or not _MARKERS[fmt].search(text):
        return None
    return fmt


def has_age_recipient(text: str) -> bool:
    """Pure: whether the sops metadata in `text` names at least one age recipient."""
    return _AGE_RECIPIENT.search(text) is not None


def identities(texts: dict[str, str]) -> str:
    """Pure: the age identities in the key files `texts` (name -> content), one a line, for
    sops' SOPS_AGE_KEY. Refuses a key file with no identity, naming it, never its content."""
    lines: list[str] = []
    for name, text in sorted(texts.items()):
        found = [
            line.strip() for line in text.splitlines() if line.strip().startswith(IDENTITY_PREFIX)
        ]
        if not found:
            raise PermanentError(
                f"decryption key {name} holds no age identity (a line starting "
                f"{IDENTITY_PREFIX}); store age-keygen's output under a key ending in {KEY_SUFFIX}"
            )
        lines.extend(found)
    return "\n".join(lines)


def encrypted_values(fmt: Format, encrypted: str, plain: str) -> set[str]:
    """Pure: the decrypted values of one file: each value whose encrypted form was ENC[...],
    found by walking the encrypted and the decrypted document side by side."""
    values: set[str] = set()
    if fmt in ("dotenv", "ini"):
        before = _assignments(encrypted)
        for key, value in _assignments(plain).items():
            if _ENCRYPTED_VALUE.match(before.get(key, "")) and not _ENCRYPTED_VALUE.match(value):
                values.add(value)
    else:
        try:
            documents = zip(yaml.safe_load_all(encrypted), yaml.safe_load_all(plain), strict=False)
            for enc_doc, plain_doc in documents:
                _pair_leaves(enc_doc, plain_doc, values)
        except yaml.YAMLError:
            pass  # render reports a file that is not YAML; nothing more to scrub
    return {value for value in values if len(value) >= MIN_SCRUBBED_CHARS}


def _assignments(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", ";", "[")):
            pairs[key.strip()] = value.strip()
    return pairs


def _pair_leaves(encrypted: Any, plain: Any, values: set[str]) -> None:
    """Walk both documents together. Iterative, and each shared node (a YAML alias) is
    visited once, so an aliased document costs its size as written, not as expanded."""
    seen: set[tuple[int, int]] = set()
    pending = [(encrypted, plain)]
    while pending:
        enc, pla = pending.pop()
        if isinstance(enc, dict | list):
            if (id(enc), id(pla)) in seen:
                continue
            seen.add((id(enc), id(pla)))
        if isinstance(enc, dict) and isinstance(pla, dict):
            pending.extend(
                (enc[key], value) for key, value in pla.items() if key != "sops" and key in enc
            )
        elif isinstance(enc, list) and isinstance(pla, list):
            pending.extend(zip(enc, pla, strict=False))
        elif isinstance(enc, str) and _ENCRYPTED_VALUE.match(enc):
            text = pla if isinstance(pla, str) else str(pla)
            values.update({text, *(line.strip() for line in text.splitlines() if line.strip())})


def failure_message(shown: str, stderr: str, code: int) -> str:
    """Pure: one line for a file sops could not decrypt, by its exit code (51: MAC mismatch,
    128: no key could open the data key) or what its discarded output says. Names the file
    and the fix; never repeats sops' output."""
    if code == SOPS_MAC_MISMATCH or "MAC mismatch" in stderr:
        return (
            f"{shown}: SOPS MAC mismatch, the file was changed after it was encrypted; "
            "edit it with sops, never by hand, and commit it again"
        )
    if code == SOPS_NO_KEY or "did not match any of the recipients" in stderr:
        return (
            f"{shown}: none of the target's age keys can decrypt it; encrypt it for the "
            "target's age recipient (sops updatekeys) or fix the decryption Secret"
        )
    return f"{shown}: sops could not decrypt it (exit {code}); check that it is a valid SOPS file"


# --- the I/O shell ----------------------------------------------------------------------------


def find_encrypted(root: Path, start: Path) -> list[EncryptedFile]:
    """The SOPS-encrypted files at or below `start` (a folder or a file) in the checkout
    `root`, sorted by path. Symlinks are not followed: render checks them, and a file is
    decrypted once, where it really is."""
    found: list[EncryptedFile] = []
    for path in _files(start):
        if path.suffix.lower() not in _FORMATS or path.is_symlink():
            continue
        shown = path.relative_to(root).as_posix()
        if path.stat().st_size > MAX_ENCRYPTED_BYTES:
            continue  # too large to be an encrypted object; render refuses it if it is YAML
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        fmt = sops_format(shown, text)
        if fmt is not None:
            found.append(EncryptedFile(shown, path, fmt))
    return sorted(found, key=lambda file: file.shown)


def _files(start: Path) -> Iterator[Path]:
    if start.is_file():
        yield start
        return
    for folder, subfolders, names in os.walk(start):
        subfolders[:] = sorted(name for name in subfolders if name != ".git")
        for name in sorted(names):
            yield Path(folder) / name


def read_identities(folder: str, needed_by: str) -> str:
    """The age identities in the files ending in KEY_SUFFIX in `folder` (the mounted Secret);
    `needed_by` is the first encrypted file, named when there is no key."""
    keys = Path(folder)
    files = sorted(keys.glob(f"*{KEY_SUFFIX}")) if keys.is_dir() else []
    if not files:
        raise PermanentError(
            f"{needed_by} is SOPS-encrypted but there is no age key: {folder} holds no file "
            f"ending in {KEY_SUFFIX}; create the Secret that the target's decryption.secretRef "
            f"names, beside the Jobs, with a key such as age{KEY_SUFFIX}"
        )
    texts: dict[str, str] = {}
    for file in files:
        try:
            texts[file.name] = file.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            raise PermanentError(
                f"decryption key {file.name} cannot be read as text; store age-keygen's output"
            ) from None
    return identities(texts)


def decrypt(root: Path, start: Path, key_folder: str | None, sops: str | None = None) -> Plaintext:
    """Decrypt every SOPS-encrypted file at or below `start` in place.

    Without `key_folder` (the target has no decryption), an encrypted file is refused: applying
    ciphertext would only fail later, or worse, store it. Raises PermanentError naming the file
    for a wrong key, a tampered file or a missing key; TransientError when sops times out.
    """
    files = find_encrypted(root, start)
    plaintext = Plaintext()
    if not files:
        return plaintext
    if key_folder is None:
        raise PermanentError(
            f"{files[0].shown} is SOPS-encrypted but the target has no decryption; set "
            "decryption.secretRef on the target to a Secret holding its age key"
        )
    for file in files:
        if not has_age_recipient(file.path.read_text(encoding="utf-8")):
            raise PermanentError(
                f"{file.shown} is SOPS-encrypted for no age recipient; hooksync decrypts age "
                "only: add the target's age recipient (sops updatekeys)"
            )
    age_keys = read_identities(key_folder, files[0].shown)
    binary = _sops_binary(sops)
    with tempfile.TemporaryDirectory(prefix="hooksync-sops-") as home:
        for file in files:
            encrypted = file.path.read_text(encoding="utf-8")
            plain = _run_sops(binary, file, age_keys, home)
            file.path.write_bytes(plain)
            plaintext.files.append(file.shown)
            text = plain.decode("utf-8", errors="replace")
            plaintext.values |= encrypted_values(file.format, encrypted, text)
    return plaintext


def _run_sops(binary: str, file: EncryptedFile, age_keys: str, home: str) -> bytes:
    """sops' decrypted output for `file`; its stderr is read only to pick a message."""
    # Only what decryption needs: an empty home, so sops finds no other key (no
    # ~/.config/sops/age/keys.txt, no ~/.ssh), and no cloud metadata service to wait for.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "XDG_CONFIG_HOME": home,
        "SOPS_AGE_KEY": age_keys,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    argv = [binary, "decrypt", "--input-type", file.format, "--output-type", file.format]
    try:
        done = subprocess.run(
            [*argv, str(file.path)],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=SOPS_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise PermanentError(
            f"sops binary {binary!r} not found; install sops or set {SOPS_ENV} to its path"
        ) from None
    except subprocess.TimeoutExpired:
        raise TransientError(
            f"{file.shown}: sops took over {SOPS_TIMEOUT_SECONDS}s to decrypt it"
        ) from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", errors="replace")
        raise PermanentError(failure_message(file.shown, stderr, done.returncode))
    return done.stdout


def _sops_binary(explicit: str | None) -> str:
    binary = explicit or os.environ.get(SOPS_ENV) or shutil.which("sops")
    if not binary:
        raise PermanentError(f"sops not found on PATH; install sops or set {SOPS_ENV} to its path")
    return binary
