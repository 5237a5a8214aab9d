"""The guards that keep a push inside its target namespace: Pod Security, RoleBinding subjects,
the namespaces a configuration may name; and the change set a run's summary is read from."""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest
import yaml

from hooksync.config import ConfigError, Target, parse_config
from hooksync.inventory import ObjectRef
from hooksync.jobspec import JobSpec, parse_job_args
from hooksync.summary import RunSummary
from jobimage.changes import CHANGING, ChangeSet
from jobimage.converge import pipeline_step
from jobimage.errors import PermanentError, TransientError, ValidationError
from jobimage.podsecurity import ENFORCE_LABEL, check_pod_security
from jobimage.render import Manifest
from jobimage.validate import binding_problems, validate
from receiver.pages.status import opt_out_badges

# --- Pod Security -------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_a_namespace_enforcing_baseline_or_restricted_passes(level: str) -> None:
    assert check_pod_security("shop", {ENFORCE_LABEL: level}) == level


@pytest.mark.parametrize(
    "labels", [{}, {ENFORCE_LABEL: "privileged"}, {ENFORCE_LABEL: "Restricted"}]
)
def test_a_namespace_without_baseline_is_refused_saying_what_to_label(
    labels: dict[str, str],
) -> None:
    with pytest.raises(PermanentError) as refused:
        check_pod_security("shop", labels)
    message = str(refused.value)
    assert f"kubectl label namespace shop {ENFORCE_LABEL}=restricted" in message
    assert "allowUnenforcedPodSecurity: true" in message


# --- RoleBinding subjects -----------------------------------------------------------------------

BROAD = [
    {"kind": "Group", "name": "system:unauthenticated"},
    {"kind": "Group", "name": "system:authenticated"},
    {"kind": "Group", "name": "system:serviceaccounts"},
    {"kind": "Group", "name": "system:serviceaccounts:shop"},
    {"kind": "Group", "name": "system:serviceaccounts:kube-system"},
    {"kind": "User", "name": "system:anonymous"},
]


@pytest.mark.parametrize("subject", BROAD, ids=[s["name"] for s in BROAD])
def test_bindings_to_broad_groups_and_anonymous_are_refused(subject: dict[str, str]) -> None:
    (problem,) = binding_problems([subject], "shop", ["monitoring"])
    assert subject["name"] in problem and "subjects[0]" in problem


def test_service_accounts_of_other_namespaces_need_the_configuration() -> None:
    subjects = [
        {"kind": "ServiceAccount", "name": "web", "namespace": "shop"},
        {"kind": "ServiceAccount", "name": "web"},  # the binding's own namespace
        {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"},
        {"kind": "User", "name": "system:serviceaccount:monitoring:prometheus"},
        {"kind": "User", "name": "alice@example.com"},
        {"kind": "Group", "name": "shop-admins"},
    ]
    assert binding_problems(subjects, "shop", ["monitoring"]) == []
    refused = binding_problems(subjects, "shop")
    assert [p.split(" ", 1)[0] for p in refused] == ["subjects[2]", "subjects[3]"]
    assert all("allowedSubjectNamespaces" in p and "'monitoring'" in p for p in refused)


def test_a_binding_to_everyone_fails_validation_naming_the_file() -> None:
    binding: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "open"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
        "subjects": [{"kind": "Group", "name": "system:authenticated"}],
    }
    with pytest.raises(ValidationError) as refused:
        validate([Manifest(binding, "app/rbac.yaml", 2)], "shop", lambda *_: True, "shop")
    (problem,) = refused.value.problems
    assert problem.startswith("app/rbac.yaml document 2: RoleBinding/open: subjects[0] binds")


# --- the configuration --------------------------------------------------------------------------


def config_text(*namespaces: str, jobs: str | None = "hooksync", **extra: Any) -> str:
    doc: dict[str, Any] = {
        "jobImage": "ghcr.io/acme/job:1",
        "publicURL": "https://hooksync.example.com",
        "targets": [
            {
                "name": f"t{index}",
                "provider": "github",
                "repo": f"acme/t{index}",
                "namespace": namespace,
                "serviceAccount": "sa",
                **extra,
            }
            for index, namespace in enumerate(namespaces)
        ],
    }
    if jobs:
        doc["namespace"] = jobs
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    ("namespaces", "field"),
    [
        (("kube-system",), "targets[0] (t0).namespace: 'kube-system'"),
        (("shop", "kube-public"), "targets[1] (t1).namespace: 'kube-public'"),
        (("kube-node-lease",), "targets[0] (t0).namespace: 'kube-node-lease'"),
        (("hooksync",), "targets[0] (t0).namespace: 'hooksync' is where hooksync's Jobs run"),
        (("shop", "docs", "shop"), "targets[2] (t2).namespace: 'shop' is already converged"),
    ],
)
def test_target_namespaces_that_reach_too_far_are_refused_with_the_field(
    namespaces: tuple[str, ...], field: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(config_text(*namespaces))
    assert field in str(refused.value)


def test_the_receivers_own_namespace_is_refused_when_the_file_names_none() -> None:
    text = config_text("apps", jobs=None)
    assert parse_config(text).targets[0].namespace == "apps"
    with pytest.raises(ConfigError, match=r"targets\[0\] \(t0\).namespace: 'apps' is where"):
        parse_config(text, jobs_namespace="apps")


def test_opt_outs_travel_from_the_configuration_to_the_jobs_arguments() -> None:
    text = config_text(
        "shop", allowUnenforcedPodSecurity=True, allowedSubjectNamespaces=["monitoring"]
    )
    (target,) = parse_config(text).targets
    assert target.allow_unenforced_pod_security
    assert target.allowed_subject_namespaces == ("monitoring",)
    spec = JobSpec.for_target(target, "apply")
    assert parse_job_args(spec.to_args()) == spec
    assert "--allow-unenforced-pod-security" in spec.to_args()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"allowUnenforcedPodSecurity": "yes"}, "allowUnenforcedPodSecurity"),
        ({"allowedSubjectNamespaces": "monitoring"}, "allowedSubjectNamespaces"),
        ({"allowedSubjectNamespaces": ["Not A Label"]}, "allowedSubjectNamespaces"),
    ],
)
def test_malformed_opt_outs_are_refused_with_the_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"targets\[0\] \(t0\)\.{field}"):
        parse_config(config_text("shop", **extra))


def test_job_disk_limit_is_a_size() -> None:
    assert parse_config(config_text("shop") + "jobDiskLimit: 2Gi\n").job_disk_limit == "2Gi"
    with pytest.raises(ConfigError, match="jobDiskLimit: '2TB'"):
        parse_config(config_text("shop") + "jobDiskLimit: 2TB\n")


# --- the status page ----------------------------------------------------------------------------


def test_the_status_page_shows_a_targets_opt_outs() -> None:
    plain = Target("shop", "github", "a/b", "https://x/a/b.git", "main", ".", "shop", "sa")
    assert opt_out_badges(plain) == ""
    opted = Target(
        "shop",
        "github",
        "a/b",
        "https://x/a/b.git",
        "main",
        ".",
        "shop",
        "sa",
        allow_unenforced_pod_security=True,
        allowed_subject_namespaces=("monitoring",),
    )
    badges = opt_out_badges(opted)
    assert "Pod Security not required" in badges and "binds subjects of monitoring" in badges


# --- the change set -----------------------------------------------------------------------------


def test_counts_and_names_are_read_from_one_change_set() -> None:
    changes = ChangeSet()
    ref = ObjectRef("", "v1", "ConfigMap", "shop", "a")
    changes.add("ConfigMap/a", "created", ref)
    changes.add("Service/web", "unchanged", ref)
    changes.add("ConfigMap/b", "configured", ref)
    changes.add("Deployment/old", "pruned", ref)
    changes.add("ConfigMap/c", "created", ref)

    assert changes.counts(drifted=1) == {
        "created": 2,
        "configured": 1,
        "unchanged": 1,
        "pruned": 1,
        "drifted": 1,
    }
    assert changes.names(*CHANGING) == [
        "ConfigMap/a",
        "ConfigMap/c",
        "ConfigMap/b",
        "-Deployment/old",
    ]
    assert len(changes.refs("created", "configured", "unchanged")) == 4


def test_a_failed_summary_keeps_its_step_through_json() -> None:
    summary = RunSummary(result="failure", message="apply failed: render: x", failed_step="render")
    parsed = RunSummary.from_json(summary.to_json())
    assert parsed is not None and parsed.failed_step == "render"
    forged = summary.to_json().replace('"render"', '"<script>"')
    parsed = RunSummary.from_json(forged)
    assert parsed is not None and parsed.failed_step is None


# --- the pipeline's failures --------------------------------------------------------------------


def test_a_full_disk_is_permanent_and_says_what_to_raise() -> None:
    @pipeline_step("fetch")
    def write_checkout() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/tmp/repo/.git/objects/pack/x")

    with pytest.raises(PermanentError) as raised:
        write_checkout()
    assert raised.value.step == "fetch"
    assert "/tmp/repo/.git/objects/pack/x" in str(raised.value)
    assert "raise jobDiskLimit" in str(raised.value)


def test_an_unexpected_error_is_transient_and_keeps_its_step() -> None:
    @pipeline_step("observe")
    def observe() -> None:
        raise KeyError("metadata")

    with pytest.raises(TransientError, match="KeyError: 'metadata'") as raised:
        observe()
    assert raised.value.step == "observe"
