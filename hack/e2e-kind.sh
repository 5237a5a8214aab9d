#!/usr/bin/env bash
# hack/e2e-kind.sh: hooksync end to end on a kind cluster, for people with Docker and kind.
#
# It runs the very scenario `make e2e` runs on this project's own real node
# (`python -m world.e2e scenario`, world/e2e.py); only bringing the cluster up differs:
#   1. checks for docker (with a running engine), kind, kubectl, git and the project's
#      virtual environment (`make venv`);
#   2. creates the kind cluster "hooksync-e2e" (it refuses one that already exists: the
#      scenario needs fresh namespaces) and deletes it at the end;
#   3. builds both images from this checkout (Dockerfile.receiver, Dockerfile.job) under the
#      names the manifests use and loads them into the kind node;
#   4. runs the scenario, which installs k8s/ and k8s/examples/target-shop with
#      `kubectl apply -k` as the README says, then: a signed push, a change plus a prune, a pull
#      request preview, a second push while a converge runs, a burst while a receiver pod is
#      deleted, ten timed pushes and a 300-object converge, checking the namespace, the Jobs'
#      pods and the commit statuses.
#
# What the scenario needs of this machine:
#   - Linux: pods reach this machine's Git server and GitHub stand-in (both from world/,
#     listening on 127.0.0.1) through relays on the kind network's gateway address, so the
#     Docker bridge must route to the host, and a host firewall must let pods connect to it;
#   - the kind node's own curl: webhooks go to the receiver Service's ClusterIP from inside
#     the node (`docker exec`), as on the real node of `make e2e`;
#   - the demo app's image (registry.k8s.io/pause, world/demo-app), which kind nodes carry.
#
# Settings: HOOKSYNC_E2E_CLUSTER (kind cluster name, hooksync-e2e), HOOKSYNC_E2E_KEEP=1 (keep
# the cluster), HOOKSYNC_E2E_SKIP_BUILD=1 (load the images Docker already has under those names
# instead of building them), PYTHON (the interpreter with the project installed;
# .venv/bin/python).
#
# Usage: hack/e2e-kind.sh        exits 0 only if every step did what it says.
set -euo pipefail
# Command substitutions ($(...)) stop at a failing command too.
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${HOOKSYNC_E2E_CLUSTER:-hooksync-e2e}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# The names k8s/deployment.yaml and config.yaml's jobImage use (world/images.py).
RECEIVER_IMAGE="ghcr.io/hooksync/hooksync-receiver:0.1.0"
JOB_IMAGE="ghcr.io/hooksync/hooksync-job:0.1.0"

WORK=""
CREATED_CLUSTER=""

log() { printf 'e2e: %s\n' "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

cleanup() {
  local status=$?
  [[ -n "$WORK" ]] && rm -rf "$WORK"
  if [[ -n "$CREATED_CLUSTER" && "${HOOKSYNC_E2E_KEEP:-}" != "1" ]]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  elif [[ -n "$CREATED_CLUSTER" ]]; then
    log "kind cluster $CLUSTER left running (HOOKSYNC_E2E_KEEP=1)"
  fi
  exit "$status"
}

check_tools() {
  local tool missing=()
  for tool in docker kind kubectl git; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || die "not found on PATH: ${missing[*]}"
  docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info)"
  [[ -x "$PYTHON" ]] || die "no $PYTHON: run 'make venv' first, or set PYTHON"
  (cd "$ROOT" && "$PYTHON" -c 'import world.e2e') 2>/dev/null \
    || die "$PYTHON cannot import world.e2e: run 'make venv' in $ROOT"
}

create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    die "kind cluster $CLUSTER exists; delete it (kind delete cluster --name $CLUSTER)" \
      "or set HOOKSYNC_E2E_CLUSTER"
  fi
  log "creating kind cluster $CLUSTER"
  CREATED_CLUSTER=1
  kind create cluster --name "$CLUSTER" --wait 180s
  kind get kubeconfig --name "$CLUSTER" >"$WORK/kubeconfig"
}

build_images() {
  if [[ "${HOOKSYNC_E2E_SKIP_BUILD:-}" == "1" ]]; then
    log "not building the images (HOOKSYNC_E2E_SKIP_BUILD=1): loading Docker's own"
  else
    local revision
    revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    log "building $RECEIVER_IMAGE"
    docker build -f "$ROOT/Dockerfile.receiver" -t "$RECEIVER_IMAGE" \
      --build-arg "REVISION=$revision" "$ROOT"
    log "building $JOB_IMAGE"
    docker build -f "$ROOT/Dockerfile.job" -t "$JOB_IMAGE" \
      --build-arg "REVISION=$revision" "$ROOT"
  fi
  kind load docker-image --name "$CLUSTER" "$RECEIVER_IMAGE" "$JOB_IMAGE"
}

# The address pods reach this machine at: the kind network's IPv4 gateway.
gateway_address() {
  local address
  for address in $(docker network inspect kind \
    --format '{{range .IPAM.Config}}{{.Gateway}} {{end}}'); do
    if [[ "$address" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
      echo "$address"
      return
    fi
  done
  die "the Docker network 'kind' has no IPv4 gateway (docker network inspect kind)"
}

run_scenario() {
  local gateway
  gateway="$(gateway_address)"
  log "running the scenario (pods reach this machine at $gateway)"
  cd "$ROOT"
  "$PYTHON" -m world.e2e scenario \
    --kubeconfig "$WORK/kubeconfig" \
    --kubectl "$(command -v kubectl)" \
    --enter "docker exec -i $CLUSTER-control-plane" \
    --listen "$gateway"
}

main() {
  check_tools
  WORK="$(mktemp -d)"
  chmod 0700 "$WORK"
  trap cleanup EXIT
  create_cluster
  build_images
  run_scenario
  log "all steps passed"
}

main "$@"
