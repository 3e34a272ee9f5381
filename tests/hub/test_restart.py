"""A hub restart keeps GPU assignments: a GPU held before the restart is not handed out again.

Real components: the ``subsidyhub up`` stack (JupyterHub, npm configurable-http-proxy, the
subsidy service as a managed service, ``LocalGPUSpawner``, real JupyterLab servers), started
with ``SUBSIDYHUB_KEEP_SERVERS=1`` so that stopping the hub leaves the servers running, and
started again on the same data directory. The pool is declared in the config
(``local.gpus: ["0"]``); no GPU exists on the test machines, so GPU 0 is an id handed out
exclusively and seen by the server as ``CUDA_VISIBLE_DEVICES``. Proves that the restarted hub
rebuilds the pool from the spawner state it saved (a second GPU spawn is refused, naming the
holder) and frees the GPU when the surviving server stops (the second spawn then succeeds).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import hub_config
from .helpers import HubStack, HubUser, is_alive, process_environment

pytestmark = [pytest.mark.hub, pytest.mark.slow]


@pytest.fixture(scope="module")
def restartable_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    stack = HubStack(tmp_path_factory.mktemp("restart"), hub_config(), keep_servers=True)
    try:
        yield stack.start()
    finally:
        # The hub keeps servers when it stops: stop them through it first, then end leftovers.
        try:
            if stack.hub_running:
                for name in ("alice", "bob"):
                    user = HubUser(stack, name)
                    user.stop_server()
                    user.close()
        finally:
            stack.close()


def test_restarted_hub_keeps_the_gpu_of_a_running_server(restartable_hub: HubStack) -> None:
    hub = restartable_hub
    alice = HubUser(hub, "alice")
    response = alice.start_server("gpu-1")
    assert response.status_code in (201, 202), response.text
    alice.wait_ready()
    server = hub.server_process("alice")
    assert process_environment(server[0])["CUDA_VISIBLE_DEVICES"] == "0"
    assert hub.spawner_state("alice")["gpus"] == ["0"]
    alice.close()

    assert hub.stop_hub() == 0, hub.log_tail()
    assert is_alive(server), "alice's server should outlive the hub (SUBSIDYHUB_KEEP_SERVERS=1)"
    hub.start()

    alice, bob = HubUser(hub, "alice"), HubUser(hub, "bob")
    try:
        kept = alice.server()
        assert kept is not None and kept["ready"], hub.log_tail()
        assert alice.http.get("/user/alice/api/status").status_code == 200, hub.log_tail()
        # The service still counts alice's GPU: bob is refused before the pool is asked.
        refused = bob.start_server("gpu-1")
        assert refused.status_code == 403, refused.text
        assert "No H800 GPU is free" in refused.json()["message"]
        assert bob.server() is None

        alice.stop_server()
        assert not is_alive(server)
        assert hub.spawner_state("alice").get("gpus") is None

        started = bob.start_server("gpu-1")
        assert started.status_code in (201, 202), started.text
        bob.wait_ready()
        assert process_environment(hub.server_process("bob")[0])["CUDA_VISIBLE_DEVICES"] == "0"
    finally:
        alice.close()
        bob.close()
