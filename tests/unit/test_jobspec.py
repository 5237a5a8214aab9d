"""The Job's command line: what the receiver writes into a Job is what `hooksync-job` reads,
with --config the file fills in what the arguments leave out, and a problem is a JobSpecError
(the Job's permanent exit 2) that names it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hooksync.config import parse_config
from hooksync.jobspec import JobSpec, JobSpecError, parse_job_args
from hooksync.runsettings import DEFAULT_TIMEOUT_SECONDS
from tests.unit.test_config import target

# The configuration tests' one GitHub target, with a timeout and a chart of its own.
CONFIG = target(timeoutSeconds=120, helm={"chart": "charts/shop", "values": {"replicas": 2}})
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def test_what_the_receiver_writes_is_what_the_job_reads() -> None:
    target = parse_config(yaml.safe_dump(CONFIG)).target("shop")
    for mode, sha in (("apply", None), ("preview", SHA)):
        spec = JobSpec.for_target(target, mode, sha=sha, git_credentials="/etc/hooksync/git")
        assert parse_job_args(spec.to_args()) == spec
    assert spec.helm is not None and spec.helm.values_json == '{"replicas":2}'


def test_without_a_configuration_every_place_must_be_given() -> None:
    with pytest.raises(JobSpecError, match="missing --branch, --namespace"):
        parse_job_args(["apply", "--target", "shop", "--clone-url", "https://git/x", "--path", "."])
    given = ["--clone-url", "https://git/x", "--branch", "main", "--path", ".", "--namespace", "a"]
    spec = parse_job_args(["resync", "--target", "shop", *given])
    assert (spec.mode, spec.prune, spec.timeout_seconds) == (
        "resync",
        True,
        DEFAULT_TIMEOUT_SECONDS,
    )


def test_a_configuration_file_fills_in_and_arguments_win(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    spec = parse_job_args(["apply", "--config", str(path), "--target", "shop", "--no-prune"])
    assert (spec.namespace, spec.branch, spec.path) == ("shop", "main", "deploy/prod")
    assert (spec.prune, spec.timeout_seconds) == (False, 120)
    assert spec.helm is not None and spec.helm.chart == "charts/shop"
    spec = parse_job_args(["apply", "--config", str(path), "--target", "shop", "--branch", "next"])
    assert spec.branch == "next"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--config", "{missing}", "--target", "shop"], "cannot read the configuration file"),
        (["--config", "{config}", "--target", "nope"], "nope"),
        (["--target", "shop", "--helm-release", "x"], "--helm-\\* arguments need --helm-chart"),
        (["--target", "shop", "--helm-chart", "c", "--helm-values", "[1]"], "JSON object"),
    ],
)
def test_a_problem_is_a_job_spec_error_that_names_it(
    tmp_path: Path, args: list[str], reason: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    paths = {"config": str(config), "missing": str(tmp_path / "absent.yaml")}
    with pytest.raises(JobSpecError, match=reason):
        parse_job_args(["apply", *(arg.format(**paths) for arg in args)])


def test_the_job_reads_its_arguments_without_the_configuration_schema() -> None:
    # Everything imported before the Job's first API call is start-up time on the push path.
    probe = (
        "import sys; from jobimage.cli import main; "
        "print(sorted(m for m in ('hooksync.config', 'hooksync.schedule') if m in sys.modules))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert answer.stdout.strip() == "[]"
