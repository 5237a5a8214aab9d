# hooksync: the two commands in the README are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: all venv binaries flux images e2e test lint unit demo bench clean

all: test

# The project's virtual environment, rebuilt when the dependencies change.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# etcd, kube-apiserver, kube-controller-manager, kubectl and kustomize, built from Go modules
# into a cache outside the repository (slow only the first time on a machine); sops (which
# decrypts SOPS-encrypted files in the Job) and age-keygen (the tests' keys), and helm, each
# into a folder of its own there.
binaries:
	hack/build-binaries >/dev/null
	hack/build-binaries sops >/dev/null
	hack/build-binaries helm >/dev/null

# Flux's three controllers, built from Go modules into their own cache folder, for the
# side-by-side benchmarks only (slow only the first time on a machine).
flux:
	nice -n 10 hack/build-flux >/dev/null

# Both images, built from the Dockerfiles with podman on a base made from Debian packages
# (world/images.py); cached by content hash, so a rerun with nothing changed takes seconds.
images: venv binaries
	$(BIN)/python -m world.images

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy hooksync receiver jobimage world tests hack

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test: venv binaries lint
	HOOKSYNC_KUSTOMIZE="$$(hack/build-binaries --print)/kustomize" \
	HOOKSYNC_SOPS="$$(hack/build-binaries sops --print)/sops" \
	HOOKSYNC_HELM="$$(hack/build-binaries helm --print)/helm" \
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory e2e

# What users install, on a real node: both images, k8s/ applied with kubectl apply -k, the
# demo's scenario against the receiver Service, Jobs as real pods (world/e2e.py; needs root).
# The scenario is `python -m world.e2e scenario`, which hack/e2e-kind.sh runs on kind.
e2e: venv binaries
	hack/build-binaries --node >/dev/null
	$(BIN)/python -m world.e2e

# HOST=gitea: against a real Gitea (built into the cache on first use) instead of the stand-in.
demo: venv binaries
	$(BIN)/python -m hack.demo $(if $(HOST),--host $(HOST))

# By hand only (minutes, and the machine should be otherwise idle); wrk is Debian's.
bench: venv binaries flux
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
