"""Run inside z2jh's hub environment: load the real hub config and build every profile's pod.

Executed by tests/k8s/hubpod.py with the interpreter of ``.venv/k8s-hub`` (z2jh 4.4's hub
pins: JupyterHub 5.5, KubeSpawner 7), in a mount namespace where ``/usr/local/etc`` holds what
the hub pod mounts there (z2jh's ConfigMap and Secret, the subsidyhub ConfigMap) and with the
hub container's environment. It loads ``/usr/local/etc/jupyterhub/jupyterhub_config.py`` —
z2jh's own file, as the hub's command line names it — through JupyterHub's own loader, then,
for each profile, runs what a spawn runs before the pod is created (the ``apply_user_options``
hook, KubeSpawner's ``load_user_options``) and ``get_pod_manifest``. No cluster: KubeSpawner's
``_mock`` mode and a dummy kubeconfig (no Kubernetes API server can run here). The pre-spawn
hook is not run: it asks the subsidy service for admission (tests/hub cover it on JupyterHub 5.5).

Usage: ``python z2jh_hub.py OUTPUT.json``; z2jh's config prints to stdout, so the result goes
to a file: the versions, the hub config facts the tests check, and the pods.
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version
from types import SimpleNamespace
from typing import Any

CONFIG_FILE = "/usr/local/etc/jupyterhub/jupyterhub_config.py"
USER = "alice"


def _plain(value: Any) -> Any:
    """Config values as JSON (traitlets gives lazy containers, sets and callables)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


async def build_pods(config: Any) -> dict[str, Any]:
    from kubespawner import KubeSpawner

    profiles = [entry["slug"] for entry in config.KubeSpawner.profile_list]
    user = SimpleNamespace(name=USER, id=1, url=f"/user/{USER}/")

    async def pod(spawner: Any, profile: str) -> dict[str, Any]:
        options = {"profile": profile, "project": "p1"}
        spawner.user_options = options
        await spawner._run_apply_user_options(options)
        await spawner.load_user_options()
        manifest = await spawner.get_pod_manifest()
        return spawner.api.api_client.sanitize_for_serialization(manifest)

    fresh = {p: await pod(KubeSpawner(_mock=True, config=config, user=user), p) for p in profiles}
    # A spawner object is reused when a spawn is retried after a failure: every profile in
    # turn on one object must give the same pods as fresh spawners.
    reused_spawner = KubeSpawner(_mock=True, config=config, user=user)
    reused = {p: await pod(reused_spawner, p) for p in [*reversed(profiles), *profiles]}
    return {"fresh": fresh, "reused": reused}


def main(output: str) -> None:
    from jupyterhub.app import JupyterHub

    app = JupyterHub()
    app.load_config_file(CONFIG_FILE)
    config = app.config
    result = {
        "versions": {name: version(name) for name in ("jupyterhub", "jupyterhub-kubespawner")},
        "spawner_class": config.JupyterHub.spawner_class,
        "services": _plain(config.JupyterHub.services),
        "load_roles": _plain(config.JupyterHub.load_roles),
        "custom_scopes": _plain(config.JupyterHub.custom_scopes),
        "template_paths": _plain(config.JupyterHub.template_paths),
        "pre_spawn_hook": _plain(config.Spawner.pre_spawn_hook),
        "post_stop_hook": _plain(config.Spawner.post_stop_hook),
        "pods": asyncio.run(build_pods(config)),
    }
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1])
