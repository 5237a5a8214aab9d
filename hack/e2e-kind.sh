#!/usr/bin/env bash
# hack/e2e-kind.sh: hooksync end to end on a real cluster, for people with Docker.
#
# What it does, in order:
#   1. checks that docker (with a running engine), kind, kubectl, git, curl and openssl are here;
#   2. creates the kind cluster "hooksync-e2e" (or reuses it; only a cluster it created is
#      deleted at the end);
#   3. builds both images from this checkout (Dockerfile.receiver, Dockerfile.job), tagged
#      ghcr.io/hooksync/hooksync-{receiver,job}:e2e, and loads them into the kind nodes;
#   4. installs k8s/ and k8s/examples/target-shop from temporary copies in which the receiver
#      image is the local build (a kustomize `images:` entry) and config.yaml points the `shop`
#      target at the Git repository used here and at the local job image;
#   5. creates the Secrets (a random webhook secret and link key; the git token if given),
#      waits for the receiver's rollout and port-forwards its Service to 127.0.0.1;
#   6. runs the demo's scenario against it, as GitHub would: a signed push of an app
#      (ConfigMap, Service, Deployment) must converge namespace `shop`; a second signed push that
#      changes the ConfigMap and removes the Service must update it and prune the Service.
#
# Where the Git repository comes from:
#   - by default, a throwaway Git server inside the cluster (namespace hooksync-e2e-git): a Pod
#     running the job image (it has git and Python), serving smart HTTP through
#     `git http-backend`. Commits are made in a local repository and handed to it as a bundle
#     through `kubectl exec`; no Git host and no token are involved.
#   - or your own repository: HOOKSYNC_E2E_REPO_URL (HTTPS clone URL) and HOOKSYNC_E2E_REPO
#     (owner/name as in the webhook; derived from a github.com URL), optionally
#     HOOKSYNC_E2E_BRANCH (main), HOOKSYNC_E2E_PATH (path of the manifests in the repository,
#     "."), HOOKSYNC_E2E_GIT_TOKEN (read token, for a private repository) and
#     HOOKSYNC_E2E_GITHUB_TOKEN (to post real commit statuses). The script changes nothing in
#     your repository: it sends a signed push for the branch head and waits for that apply Job
#     to succeed. Everything the manifests there name must be allowed by
#     k8s/examples/target-shop/role.yaml and live in namespace `shop`.
#
# Other settings: HOOKSYNC_E2E_CLUSTER (kind cluster name, hooksync-e2e), HOOKSYNC_E2E_PORT
# (local port of the port-forward, 18080), HOOKSYNC_E2E_KEEP=1 (keep the cluster it created),
# HOOKSYNC_E2E_SKIP_BUILD=1 (reuse images already loaded).
#
# Usage: hack/e2e-kind.sh        exits 0 only if every step did what it says.
set -euo pipefail
# Command substitutions ($(...)) stop at a failing command too.
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${HOOKSYNC_E2E_CLUSTER:-hooksync-e2e}"
PORT="${HOOKSYNC_E2E_PORT:-18080}"
TAG="e2e"
RECEIVER_IMAGE="ghcr.io/hooksync/hooksync-receiver:$TAG"
JOB_IMAGE="ghcr.io/hooksync/hooksync-job:$TAG"
GIT_NAMESPACE="hooksync-e2e-git"
TIMEOUT_SECONDS=300

REPO_URL="${HOOKSYNC_E2E_REPO_URL:-}"
REPO="${HOOKSYNC_E2E_REPO:-}"
BRANCH="${HOOKSYNC_E2E_BRANCH:-main}"
REPO_PATH="${HOOKSYNC_E2E_PATH:-.}"
GIT_TOKEN="${HOOKSYNC_E2E_GIT_TOKEN:-}"
GITHUB_TOKEN="${HOOKSYNC_E2E_GITHUB_TOKEN:-}"

WORK=""
PORT_FORWARD_PID=""
CREATED_CLUSTER=""

log() { printf 'e2e: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
k() { kubectl --context "kind-$CLUSTER" "$@"; }

cleanup() {
  local status=$?
  if [[ -n "$PORT_FORWARD_PID" ]]; then
    kill "$PORT_FORWARD_PID" 2>/dev/null || true
    wait "$PORT_FORWARD_PID" 2>/dev/null || true
  fi
  if ((status != 0)) && [[ -n "$WORK" ]] && command -v kubectl >/dev/null; then
    log "receiver log tail:"
    k -n hooksync logs deployment/hooksync-receiver --tail=40 2>/dev/null || true
    k -n hooksync get jobs,pods 2>/dev/null || true
  fi
  [[ -n "$WORK" ]] && rm -rf "$WORK"
  # Only a cluster this run created is deleted, and not with HOOKSYNC_E2E_KEEP=1.
  if [[ -n "$CREATED_CLUSTER" && "${HOOKSYNC_E2E_KEEP:-}" != "1" ]]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  else
    log "kind cluster $CLUSTER left running (kubectl --context kind-$CLUSTER ...)"
  fi
  exit "$status"
}

# --- 1. tools ---------------------------------------------------------------------------------
check_tools() {
  local tool missing=()
  for tool in docker kind kubectl git curl openssl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || die "not found on PATH: ${missing[*]}"
  docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info)"
  if [[ -n "$REPO_URL" ]]; then
    [[ "$REPO_URL" == https://* ]] || die "HOOKSYNC_E2E_REPO_URL must be an https:// clone URL"
    if [[ -z "$REPO" && "$REPO_URL" == https://github.com/* ]]; then
      REPO="${REPO_URL#https://github.com/}"
      REPO="${REPO%.git}"
    fi
    [[ "$REPO" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] \
      || die "set HOOKSYNC_E2E_REPO to owner/name (the repository the webhook names)"
  else
    REPO="e2e/shop"
    BRANCH="main"
    REPO_PATH="deploy"
  fi
  [[ "$BRANCH" =~ ^[A-Za-z0-9._/-]+$ ]] || die "HOOKSYNC_E2E_BRANCH: not a plain branch name"
  [[ "$REPO_PATH" =~ ^[A-Za-z0-9._/-]+$ ]] || die "HOOKSYNC_E2E_PATH: not a plain relative path"
}

# --- 2. and 3. cluster and images -------------------------------------------------------------
create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "reusing kind cluster $CLUSTER"
  else
    log "creating kind cluster $CLUSTER"
    CREATED_CLUSTER=1
    kind create cluster --name "$CLUSTER" --wait 180s
  fi
}

build_images() {
  if [[ "${HOOKSYNC_E2E_SKIP_BUILD:-}" == "1" ]]; then
    log "skipping the image builds (HOOKSYNC_E2E_SKIP_BUILD=1)"
    return
  fi
  local revision
  revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  log "building $RECEIVER_IMAGE"
  docker build -f "$ROOT/Dockerfile.receiver" -t "$RECEIVER_IMAGE" \
    --build-arg "REVISION=$revision" "$ROOT"
  log "building $JOB_IMAGE"
  docker build -f "$ROOT/Dockerfile.job" -t "$JOB_IMAGE" --build-arg "REVISION=$revision" "$ROOT"
  kind load docker-image --name "$CLUSTER" "$RECEIVER_IMAGE" "$JOB_IMAGE"
}

# --- the in-cluster Git server ----------------------------------------------------------------
start_git_server() {
  log "starting the in-cluster Git server in namespace $GIT_NAMESPACE"
  k apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $GIT_NAMESPACE
---
apiVersion: v1
kind: Pod
metadata:
  name: gitserver
  namespace: $GIT_NAMESPACE
  labels: {app: gitserver}
spec:
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: git
      image: $JOB_IMAGE
      imagePullPolicy: IfNotPresent
      command: ["/bin/sh", "-c"]
      args:
        - |
          set -eu
          mkdir -p /tmp/srv/cgi-bin /tmp/git
          git init --quiet --bare --initial-branch=main /tmp/git/shop.git
          cgi=/tmp/srv/cgi-bin/git
          echo '#!/bin/sh' > \$cgi
          echo 'export GIT_PROJECT_ROOT=/tmp/git GIT_HTTP_EXPORT_ALL=1' >> \$cgi
          echo 'export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0="*"' >> \$cgi
          echo 'exec git http-backend' >> \$cgi
          chmod 0755 \$cgi
          cd /tmp/srv
          exec python3 -m http.server --cgi 8080
      ports: [{name: http, containerPort: 8080}]
      readinessProbe:
        tcpSocket: {port: http}
        periodSeconds: 2
      securityContext:
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities: {drop: ["ALL"]}
      volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata:
  name: gitserver
  namespace: $GIT_NAMESPACE
spec:
  selector: {app: gitserver}
  ports: [{name: http, port: 80, targetPort: http}]
EOF
  k -n "$GIT_NAMESPACE" wait --for=condition=Ready pod/gitserver --timeout=180s
  REPO_URL="http://gitserver.$GIT_NAMESPACE.svc.cluster.local/cgi-bin/git/shop.git"
  git -C "$WORK" init --quiet --initial-branch=main repo
}

# Commit the files given as NAME=CONTENT (an empty CONTENT deletes NAME) in the local repository
# and hand the branch to the in-cluster server; prints the new commit's SHA.
commit_and_publish() {
  local message="$1" entry name content
  shift
  for entry in "$@"; do
    name="${entry%%=*}"
    content="${entry#*=}"
    if [[ -z "$content" ]]; then
      git -C "$WORK/repo" rm --quiet -- "$name"
    else
      mkdir -p "$(dirname "$WORK/repo/$name")"
      printf '%s' "$content" >"$WORK/repo/$name"
      git -C "$WORK/repo" add -- "$name"
    fi
  done
  git -C "$WORK/repo" -c user.name=hooksync-e2e -c user.email=e2e@hooksync.invalid \
    commit --quiet -m "$message"
  git -C "$WORK/repo" bundle create --quiet "$WORK/push.bundle" main
  k -n "$GIT_NAMESPACE" exec -i gitserver -- /bin/sh -c \
    'cat >/tmp/push.bundle && git -C /tmp/git/shop.git fetch --quiet --force /tmp/push.bundle "+refs/heads/main:refs/heads/main"' \
    <"$WORK/push.bundle"
  git -C "$WORK/repo" rev-parse HEAD
}

# --- 4. and 5. install ------------------------------------------------------------------------
install_hooksync() {
  log "installing k8s/ and the example target (temporary copies in $WORK)"
  cp -R "$ROOT/k8s" "$WORK/k8s"
  cat >>"$WORK/k8s/kustomization.yaml" <<EOF
images:
  - name: ghcr.io/hooksync/hooksync-receiver
    newTag: $TAG
EOF
  local git_secret_line=""
  if [[ -n "$GIT_TOKEN" ]]; then
    git_secret_line="    gitSecret: hooksync-shop-git"
  fi
  cat >"$WORK/k8s/config.yaml" <<EOF
jobImage: $JOB_IMAGE
publicURL: http://127.0.0.1:$PORT
github:
  apiURL: https://api.github.com
targets:
  - name: shop
    provider: github
    repo: $REPO
    cloneURL: $REPO_URL
    branch: $BRANCH
    path: $REPO_PATH
    namespace: shop
    serviceAccount: hooksync-shop
$git_secret_line
    prune: true
    resync: ""
    previews: false
    timeoutSeconds: 240
EOF
  # The git Secret is created below from the token, not from the placeholder file.
  local overlay="$WORK/k8s/examples/target-shop"
  sed -i.orig '/git-secret.yaml/d' "$overlay/kustomization.yaml"
  rm -f "$overlay/kustomization.yaml.orig" "$overlay/git-secret.yaml"

  k apply -k "$WORK/k8s"
  k apply -k "$overlay"

  # Secret values go through files in $WORK (mode 0700), never through a command line.
  local secrets_env="$WORK/secrets.env"
  WEBHOOK_SECRET="$(openssl rand -hex 32)"
  {
    printf 'HOOKSYNC_GITHUB_WEBHOOK_SECRET=%s\n' "$WEBHOOK_SECRET"
    printf 'HOOKSYNC_LINK_KEY=%s\n' "$(openssl rand -hex 32)"
    if [[ -n "$GITHUB_TOKEN" ]]; then printf 'HOOKSYNC_GITHUB_TOKEN=%s\n' "$GITHUB_TOKEN"; fi
  } >"$secrets_env"
  k -n hooksync create secret generic hooksync-secrets --from-env-file="$secrets_env" \
    --dry-run=client -o yaml | k apply -f -
  if [[ -n "$GIT_TOKEN" ]]; then
    printf '%s' "$GIT_TOKEN" >"$WORK/git-token"
    k -n hooksync create secret generic hooksync-shop-git --from-file=token="$WORK/git-token" \
      --dry-run=client -o yaml | k apply -f -
  fi
  # The Secret may have appeared after the pods started; restart them so they read it.
  k -n hooksync rollout restart deployment/hooksync-receiver
  k -n hooksync rollout status deployment/hooksync-receiver --timeout=300s
}

start_port_forward() {
  k -n hooksync port-forward svc/hooksync-receiver "$PORT:80" >"$WORK/port-forward.log" 2>&1 &
  PORT_FORWARD_PID=$!
  local i
  for ((i = 0; i < 60; i++)); do
    if curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
      log "receiver reachable at http://127.0.0.1:$PORT"
      return
    fi
    sleep 1
  done
  cat "$WORK/port-forward.log" >&2
  die "the receiver did not answer on the port-forward"
}

# --- 6. the scenario --------------------------------------------------------------------------
# Send GitHub's push webhook for SHA, signed with the webhook secret; expect 202.
signed_push() {
  local sha="$1" delivery="e2e-$1-$RANDOM" signature status
  printf '{"ref":"refs/heads/%s","before":"%s","after":"%s","created":false,"deleted":false,"repository":{"full_name":"%s"},"commits":[{"id":"%s"}],"head_commit":{"id":"%s"}}' \
    "$BRANCH" "0000000000000000000000000000000000000000" "$sha" "$REPO" "$sha" "$sha" \
    >"$WORK/payload.json"
  signature="$(openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -r <"$WORK/payload.json")"
  signature="${signature%% *}"
  status="$(curl -sS -o "$WORK/answer.json" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' \
    -H 'X-GitHub-Event: push' \
    -H "X-GitHub-Delivery: $delivery" \
    -H "X-Hub-Signature-256: sha256=$signature" \
    --data-binary "@$WORK/payload.json" \
    "http://127.0.0.1:$PORT/hooks/github")"
  log "POST /hooks/github for ${sha:0:7} -> $status $(cat "$WORK/answer.json")"
  [[ "$status" == "202" ]] || die "expected 202 for the signed push of ${sha:0:7}"
}

# Wait until the apply Job of SHA (its name is deterministic) completes; fail if it fails.
wait_job() {
  local job="hooksync-shop-apply-${1:0:7}" conditions i
  for ((i = 0; i < TIMEOUT_SECONDS; i += 2)); do
    conditions="$(k -n hooksync get job "$job" \
      -o jsonpath='{range .status.conditions[*]}{.type}={.status}{" "}{end}' 2>/dev/null || true)"
    if [[ "$conditions" == *"Complete=True"* ]]; then
      log "job $job completed"
      return
    fi
    if [[ "$conditions" == *"Failed=True"* ]]; then
      k -n hooksync logs "job/$job" --tail=30 >&2 || true
      die "job $job failed"
    fi
    sleep 2
  done
  die "job $job did not complete within ${TIMEOUT_SECONDS}s"
}

expect() {
  local what="$1" want="$2" got="$3"
  if [[ "$got" == "$want" ]]; then
    log "[ok] $what"
  else
    die "$what: want '$want', got '$got'"
  fi
}

# The app is the one `make e2e` deploys on its real node (hack/e2e-app/), filled in per commit.
app_file() {
  local name="$1" greeting="${2:-}" replicas="${3:-1}"
  sed -e "s|@GREETING@|$greeting|g" -e "s|@REPLICAS@|$replicas|g" \
    -e "s|@IMAGE@|registry.k8s.io/pause:3.10|g" "$ROOT/hack/e2e-app/$name.yaml"
}

scenario_local_repo() {
  log "1. a signed push of the app: Deployment, Service, ConfigMap"
  local first second
  first="$(commit_and_publish "Add the web app" \
    "deploy/configmap.yaml=$(app_file configmap hello)" \
    "deploy/service.yaml=$(app_file service)" \
    "deploy/deployment.yaml=$(app_file deployment "" 1)")"
  signed_push "$first"
  wait_job "$first"
  expect "ConfigMap web says hello" "hello" \
    "$(k -n shop get configmap web -o jsonpath='{.data.greeting}')"
  expect "Service web exists" "web" "$(k -n shop get service web -o jsonpath='{.metadata.name}')"
  expect "Deployment web is available" "1" \
    "$(k -n shop get deployment web -o jsonpath='{.status.availableReplicas}')"

  log "2. a signed push that changes the ConfigMap and removes the Service"
  second="$(commit_and_publish "Change the greeting, drop the Service" \
    "deploy/configmap.yaml=$(app_file configmap world)" \
    "deploy/service.yaml=")"
  signed_push "$second"
  wait_job "$second"
  expect "ConfigMap web says world" "world" \
    "$(k -n shop get configmap web -o jsonpath='{.data.greeting}')"
  expect "Service web was pruned" "" \
    "$(k -n shop get service web --ignore-not-found -o jsonpath='{.metadata.name}')"
}

scenario_own_repo() {
  log "a signed push for the head of $REPO $BRANCH"
  local sha
  # A token reaches git through its environment, never its command line.
  if [[ -n "$GIT_TOKEN" ]]; then
    local basic
    basic="$(printf 'x-access-token:%s' "$GIT_TOKEN" | openssl base64 -A)"
    sha="$(GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader \
      GIT_CONFIG_VALUE_0="Authorization: Basic $basic" GIT_TERMINAL_PROMPT=0 \
      git ls-remote "$REPO_URL" "refs/heads/$BRANCH")"
  else
    sha="$(GIT_TERMINAL_PROMPT=0 git ls-remote "$REPO_URL" "refs/heads/$BRANCH")"
  fi
  sha="${sha%%[[:space:]]*}"
  [[ "$sha" =~ ^[0-9a-f]{40}$ ]] || die "branch $BRANCH not found in $REPO_URL"
  signed_push "$sha"
  wait_job "$sha"
  log "namespace shop now holds:"
  k -n shop get all,configmaps -l "applyset.kubernetes.io/part-of" >&2 || k -n shop get all >&2
}

main() {
  check_tools
  WORK="$(mktemp -d)"
  chmod 0700 "$WORK"
  trap cleanup EXIT
  create_cluster
  build_images
  if [[ -z "$REPO_URL" ]]; then
    start_git_server
  fi
  install_hooksync
  start_port_forward
  if [[ -d "$WORK/repo" ]]; then
    scenario_local_repo
  else
    scenario_own_repo
  fi
  log "all steps passed"
}

main "$@"
