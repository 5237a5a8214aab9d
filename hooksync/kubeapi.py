"""How both commands reach the API server: one choice of credentials, in one order.

An explicit kubeconfig file (the receiver's --kubeconfig), else the file KUBECONFIG names, else
the pod's service account when running in a cluster, else ~/.kube/config.
"""

from __future__ import annotations

import os

from kubernetes import client, config


def api_client(
    kubeconfig: str | None = None, *, pool_size: int, fail_fast: bool = False
) -> client.ApiClient:
    """An API client by the rule above, with `pool_size` connections.

    `fail_fast` turns off urllib3's retries, so a caller that answers a webhook with 503 learns
    of an unreachable API server at once instead of after several silent retries.
    """
    configuration = client.Configuration()
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if kubeconfig or os.environ.get("KUBECONFIG") or not in_cluster:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    if fail_fast:
        configuration.retries = False
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)
