"""One scenario, two places: `make e2e` and hack/e2e-kind.sh run `python -m world.e2e scenario`.

kind cannot run here, so these check the script's side without it: the command it runs is the
one world/e2e.py parses, with the options `make e2e` passes for the real node, and it loads the
images under the names the manifests use.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from world import e2e
from world.images import JOB_IMAGE, RECEIVER_IMAGE

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "hack" / "e2e-kind.sh").read_text()


def script_command(text: str, module: str) -> list[str]:
    """The script's command that runs `-m module`, continuation lines joined, with each shell
    expansion ("$WORK/kubeconfig", "$(command -v kubectl)") standing for itself as one word."""
    joined = text.replace("\\\n", " ")
    lines = [
        line
        for line in joined.splitlines()
        if f"-m {module} " in line and not line.lstrip().startswith("#")
    ]
    assert len(lines) == 1, f"hack/e2e-kind.sh runs -m {module} {len(lines)} times: {lines}"
    # Expansions become placeholders shlex can split; their text stays recognisable.
    words = re.sub(r"\$\((?:[^()]|\([^()]*\))*\)", "SUBSTITUTED", lines[0])
    words = re.sub(r"\$\{?([A-Za-z_]+)\}?", r"VAR_\1", words)
    return shlex.split(words)


def options(args: list[str]) -> set[str]:
    return {arg for arg in args if arg.startswith("--")}


def test_the_kind_script_runs_the_scenario_entry_point() -> None:
    command = script_command(SCRIPT, "world.e2e")
    assert command[:3] == ["VAR_PYTHON", "-m", "world.e2e"], command
    args = e2e.parser().parse_args(command[3:])
    assert args.command == "scenario"
    # The cluster's admin kubeconfig, kubectl from PATH, curl inside the kind node, and relays
    # on the kind network's gateway.
    assert str(args.kubeconfig) == "VAR_WORK/kubeconfig"
    assert args.kubectl == "SUBSTITUTED"
    assert shlex.split(args.enter) == ["docker", "exec", "-i", "VAR_CLUSTER-control-plane"]
    assert args.listen == "VAR_gateway"


def test_make_e2e_passes_the_same_options_for_the_real_node() -> None:
    kind = options(script_command(SCRIPT, "world.e2e")[3:])
    node = e2e.scenario_args(
        Path("/k/kubeconfig"), Path("/bin/kubectl"), ["nsenter", "--net=/run/netns/x"], "10.1.1.1"
    )
    assert node[0] == "scenario"
    assert options(node) == kind
    parsed = e2e.parser().parse_args(node)
    assert shlex.split(parsed.enter) == ["nsenter", "--net=/run/netns/x"]
    assert parsed.listen == "10.1.1.1"
    # The real node runs the demo app from its own sandbox image (nothing is pulled there).
    with_image = e2e.scenario_args(Path("k"), Path("kubectl"), ["x"], "1.2.3.4", "pause:1")
    assert e2e.parser().parse_args(with_image).app_image == "pause:1"


def test_make_e2e_runs_the_module_that_hands_the_node_to_the_scenario() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ne2e:", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/python -m world.e2e" in recipe, recipe


def test_the_kind_script_loads_the_images_the_manifests_name() -> None:
    assert f'RECEIVER_IMAGE="{RECEIVER_IMAGE}"' in SCRIPT
    assert f'JOB_IMAGE="{JOB_IMAGE}"' in SCRIPT
    assert re.search(r'kind load docker-image .*"\$RECEIVER_IMAGE" "\$JOB_IMAGE"', SCRIPT)
    deployment = (ROOT / "k8s" / "deployment.yaml").read_text()
    assert f"image: {RECEIVER_IMAGE}" in deployment
    assert f"jobImage: {JOB_IMAGE}" in (ROOT / "k8s" / "config.yaml").read_text()


def test_start_to_ready_reads_each_pods_own_status_times() -> None:
    def pod(created: str, *conditions: tuple[str, str, str]) -> dict[str, Any]:
        return {
            "metadata": {"creationTimestamp": created},
            "status": {
                "conditions": [
                    {"type": kind, "status": status, "lastTransitionTime": at}
                    for kind, status, at in conditions
                ]
            },
        }

    scheduled = ("PodScheduled", "True", "2026-01-01T10:00:01Z")
    pods = [
        pod("2026-01-01T10:00:00Z", scheduled, ("Ready", "True", "2026-01-01T10:00:12Z")),
        pod("2026-01-01T10:00:00Z", ("Ready", "False", "2026-01-01T10:00:30Z")),
        pod("2026-01-01T10:00:05Z", ("Ready", "True", "2026-01-01T10:01:05Z")),
    ]
    assert e2e.start_to_ready(pods) == [12.0, 60.0]
