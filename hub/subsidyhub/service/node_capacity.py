"""Each GPU type's capacity read from the cluster's nodes (``kubernetes.capacity_from_nodes``).

A configured ``gpu_capacity`` drifts from the cluster: nodes are drained, added, fail, or have
MIG reconfigured. With ``capacity_from_nodes`` the leading service lists the nodes that carry
``kubernetes.gpu_node_label`` (read-only: ``get``/``list`` on nodes, granted by the subsidyhub
chart's ``nodeCapacity.enabled``) every ``capacity_refresh_seconds`` and counts, per GPU type,
the allocatable of the type's resource on schedulable, ready nodes whose label has the type's
value. The result goes to the ledger (:func:`subsidyhub.ledger.capacity.record_observed`), so
every replica and the CLI admit against it; when reads stop, the configured number counts
again after three intervals.

In a pod the API server and credentials are the service account's (``KUBERNETES_SERVICE_HOST``,
the mounted token and CA); ``kubernetes.api_url`` points elsewhere (tests, a proxy).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from subsidyhub.settings import Kubernetes

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class NodeReadFailed(Exception):
    """The nodes could not be read; the message says why, for the log."""


def count_gpus(nodes: list[dict[str, Any]], config: Kubernetes) -> dict[str, tuple[int, int]]:
    """GPUs and nodes per GPU type of ``config.gpu_types`` among ``nodes`` (the API's items):
    schedulable, ready nodes whose ``gpu_node_label`` has the type's value; a type without any
    counts 0."""
    counted = {gpu_type: (0, 0) for gpu_type in config.gpu_types}
    for node in nodes:
        spec, status = node.get("spec") or {}, node.get("status") or {}
        labels = (node.get("metadata") or {}).get("labels") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if spec.get("unschedulable") or not ready:
            continue
        allocatable = status.get("allocatable") or {}
        for gpu_type, wanted in config.gpu_types.items():
            if labels.get(config.gpu_node_label) != wanted.node_label_value:
                continue
            amount = str(allocatable.get(wanted.resource, "0"))
            gpus = int(amount) if amount.isascii() and amount.isdigit() else 0
            if gpus:
                total, count = counted[gpu_type]
                counted[gpu_type] = (total + gpus, count + 1)
    return counted


def _api() -> tuple[str, dict[str, str], str | bool]:
    """The in-cluster API server, its headers and the CA to verify it."""
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not host or not port:
        raise NodeReadFailed(
            "not in a Kubernetes pod (no KUBERNETES_SERVICE_HOST): set kubernetes.api_url or "
            "turn kubernetes.capacity_from_nodes off"
        )
    token = (SERVICE_ACCOUNT / "token").read_text(encoding="utf-8").strip()
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return server, {"Authorization": f"Bearer {token}"}, str(SERVICE_ACCOUNT / "ca.crt")


async def read_nodes(config: Kubernetes, *, timeout_s: float = 10.0) -> dict[str, tuple[int, int]]:
    """List the GPU nodes and count them (:func:`count_gpus`); raises :class:`NodeReadFailed`."""
    try:
        if config.api_url:
            server, headers, verify = config.api_url.rstrip("/"), {}, True
        else:
            server, headers, verify = _api()
        async with httpx.AsyncClient(headers=headers, verify=verify, timeout=timeout_s) as http:
            response = await http.get(
                f"{server}/api/v1/nodes", params={"labelSelector": config.gpu_node_label}
            )
    except (OSError, httpx.HTTPError) as error:
        raise NodeReadFailed(f"{type(error).__name__}: {error}") from None
    if response.status_code != 200:
        raise NodeReadFailed(f"GET /api/v1/nodes answered {response.status_code}")
    try:
        items = response.json()["items"]
    except (ValueError, KeyError, TypeError):
        raise NodeReadFailed("GET /api/v1/nodes did not answer a node list") from None
    return count_gpus(items, config)
