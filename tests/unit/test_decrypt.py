"""The decrypt step's pure parts: which files are SOPS-encrypted, the age identities, the
messages for a file that cannot be decrypted, and scrubbing decrypted values out of messages.
Decrypting for real, with the pinned sops, is in tests/integration/test_converge_sops.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobimage.decrypt import (
    REDACTED,
    Plaintext,
    encrypted_values,
    failure_message,
    find_encrypted,
    has_age_recipient,
    identities,
    sops_format,
)
from jobimage.errors import PermanentError, RenderError, ValidationError

ENC = "ENC[AES256_GCM,data:q83vEjRW,iv:3xZ1,tag:9XmC,type:str]"
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
YAML_SECRET = f"""apiVersion: v1
kind: Secret
metadata:
    name: db
stringData:
    password: {ENC}
sops:
    age:
        - recipient: {RECIPIENT}
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            -----END AGE ENCRYPTED FILE-----
    mac: {ENC}
    version: 3.13.3
"""
JSON_SECRET = f'{{"password": "{ENC}", "sops": {{"age": [{{"recipient": "{RECIPIENT}"}}]}}}}'
DOTENV = f"TOKEN={ENC}\nsops_age__list_0__map_recipient={RECIPIENT}\nsops_mac={ENC}\n"
INI = f"[app]\ntoken = {ENC}\n[sops]\nage__list_0__map_recipient = {RECIPIENT}\nmac = {ENC}\n"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("deploy/secret.yaml", YAML_SECRET, "yaml"),
        ("deploy/secret.YML", YAML_SECRET, "yaml"),
        ("deploy/secret.json", JSON_SECRET, "json"),
        ("deploy/app.env", DOTENV, "dotenv"),
        ("deploy/app.ini", INI, "ini"),
        # sops picks the format by extension: YAML metadata in a .json file is not its format.
        ("deploy/secret.json", YAML_SECRET, None),
        ("deploy/secret.txt", YAML_SECRET, None),
        # A key merely named sops, nested or in a ConfigMap's data, is not sops' metadata.
        ("deploy/config.yaml", "data:\n  sops: enabled\n", None),
        ("deploy/app.env", "SOPS_MAC=x\n", None),
    ],
)
def test_sops_format_is_read_from_the_metadata_and_the_extension(
    name: str, text: str, expected: str | None
) -> None:
    assert sops_format(name, text) == expected


@pytest.mark.parametrize("text", [YAML_SECRET, JSON_SECRET, DOTENV, INI])
def test_age_recipients_are_found_in_every_format(text: str) -> None:
    assert has_age_recipient(text)


def test_a_file_for_kms_or_pgp_only_has_no_age_recipient() -> None:
    assert not has_age_recipient(YAML_SECRET.replace(f"- recipient: {RECIPIENT}", "- arn: x"))


def test_identities_keep_only_age_identity_lines_of_every_key_file() -> None:
    keys = {
        "b.agekey": "# created: 2026\n# public key: age1abc\nAGE-SECRET-KEY-1BBB\n",
        "a.agekey": "AGE-SECRET-KEY-1AAA\n",
    }
    assert identities(keys) == "AGE-SECRET-KEY-1AAA\nAGE-SECRET-KEY-1BBB"


def test_a_key_file_without_an_identity_is_named_but_not_shown() -> None:
    with pytest.raises(PermanentError, match=r"decryption key age\.agekey holds no") as caught:
        identities({"age.agekey": "ssh-ed25519 AAAAC3secretish"})
    assert "AAAAC3secretish" not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "stderr", "expected"),
    [
        (51, "MAC mismatch. File has 6153, computed 9D47", "MAC mismatch"),
        (1, "Failed to decrypt: MAC mismatch. File has 1A, computed 2B", "MAC mismatch"),
        (128, "Failed to get the data key required to decrypt", "none of the target's"),
        (1, "identity did not match any of the recipients", "none of the target's"),
        (2, "Error unmarshalling input yaml: secret-ish text", "could not decrypt it (exit 2)"),
    ],
)
def test_failure_message_names_the_file_never_sops_output(
    code: int, stderr: str, expected: str
) -> None:
    message = failure_message("deploy/secret.yaml", stderr, code)
    assert message.startswith("deploy/secret.yaml: ") and expected in message
    assert stderr not in message and "\n" not in message


def test_decrypted_values_are_the_ones_sops_encrypted() -> None:
    plain_yaml = YAML_SECRET.replace(ENC, "hunter2-password", 1)
    assert encrypted_values("yaml", YAML_SECRET, plain_yaml) == {"hunter2-password"}
    plain_env = DOTENV.replace(ENC, "tok-123456", 1)
    assert encrypted_values("dotenv", DOTENV, plain_env) == {"tok-123456"}


def test_multi_line_values_are_scrubbed_line_by_line_too() -> None:
    plain = YAML_SECRET.replace(ENC, '"line-one\\nline-two"', 1)
    values = encrypted_values("yaml", YAML_SECRET, plain)
    assert {"line-one", "line-two"} <= values


def test_short_values_are_not_scrubbed() -> None:
    assert encrypted_values("yaml", YAML_SECRET, YAML_SECRET.replace(ENC, "abc", 1)) == set()


def test_scrub_replaces_every_value_longest_first() -> None:
    plaintext = Plaintext(values={"s3cret", "s3cret-longer"})
    assert plaintext.scrub("a s3cret-longer and s3cret") == f"a {REDACTED} and {REDACTED}"


def test_converge_errors_are_scrubbed_in_place() -> None:
    plaintext = Plaintext(values={"s3cret-value"})
    error = RenderError("kustomize build of deploy failed: bad value s3cret-value")
    error.scrub(plaintext.scrub)
    assert str(error) == f"kustomize build of deploy failed: bad value {REDACTED}"
    problems = ValidationError(["a: s3cret-value", "b: fine"])
    problems.scrub(plaintext.scrub)
    assert "s3cret-value" not in str(problems)
    assert problems.problems == (f"a: {REDACTED}", "b: fine")


def test_find_encrypted_walks_below_the_path_skipping_git_and_symlinks(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    (deploy / "nested").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (deploy / "nested" / "secret.yaml").write_text(YAML_SECRET)
    (deploy / "app.env").write_text(DOTENV)
    (deploy / "plain.yaml").write_text("kind: ConfigMap\n")
    (deploy / "link.yaml").symlink_to(deploy / "nested" / "secret.yaml")
    (tmp_path / ".git" / "secret.yaml").write_text(YAML_SECRET)
    (tmp_path / "elsewhere.yaml").write_text(YAML_SECRET)
    found = find_encrypted(tmp_path, deploy)
    assert [(f.shown, f.format) for f in found] == [
        ("deploy/app.env", "dotenv"),
        ("deploy/nested/secret.yaml", "yaml"),
    ]


def test_aliases_in_a_decrypted_file_are_walked_once() -> None:
    # A YAML bomb in the encrypted and the decrypted file: nine levels of ten aliases each.
    levels = ["a0: &a0 " + ENC]
    for level in range(1, 10):
        levels.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    bomb = "\n".join(levels) + "\nsops:\n    mac: x\n"
    plain = bomb.replace(ENC, "bomb-value", 1)
    assert encrypted_values("yaml", bomb, plain) == {"bomb-value"}
