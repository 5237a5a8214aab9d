"""Load only the parts of the Kubernetes client the Job uses.

`import kubernetes` runs the package's __init__, which imports every subpackage: the kubeconfig
loader with its cloud auth plugins and YAML, streams, informers, leader election, utils. Half a
second of a converge Job's start went there (`python -X importtime -c "import jobimage.cli"`),
before its first API call. Registering the package without running its __init__ lets
`kubernetes.client` and `kubernetes.dynamic` load alone; any other subpackage still loads,
by its own name, when something imports it.
"""

from __future__ import annotations

import importlib.util
import sys


def register_kubernetes_package() -> None:
    """Put the `kubernetes` package in sys.modules without running its __init__; nothing when
    it is imported already (the receiver, the tests) or not installed."""
    if "kubernetes" in sys.modules:
        return
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)
    sys.modules["kubernetes"] = package
    # kubernetes.dynamic reads the library's version from the package, as __init__ sets it.
    from kubernetes import client

    package.__version__ = client.__version__  # type: ignore[attr-defined]
