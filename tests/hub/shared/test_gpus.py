"""Exclusive GPUs: two spawns race for the one GPU of the pool; one gets it, one is told why.

Both spawns are sent at once, so the loser may be stopped by the service's admission (the
GPU type's capacity, 1 here, is held: "join the queue"), by the hub plugin's pre-spawn check
(the pool's GPU is already taken, naming the holder) or by the pool itself when the spawner
starts; either way it must fail with a message saying the GPU is taken, and leave no running
session.

Real components: the ``subsidyhub up`` stack (JupyterHub, npm configurable-http-proxy, the
subsidy service as a managed service, ``LocalGPUSpawner``, real JupyterLab servers). The pool
is declared in the config (``local.gpus: ["0"]``); no GPU exists on the test machines, so the
GPU is an id handed out exclusively, and the proof that the server got it is
``CUDA_VISIBLE_DEVICES=0`` in the server process's environment (read from ``/proc`` with the
pid the hub saved in the spawner's state, next to the GPUs it holds). The spawn page reads the
same pool, so a taken GPU disables the GPU profile there before anyone tries.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..helpers import HubStack, HubUser, process_environment, service_get

pytestmark = pytest.mark.hub


def refusal_message(user: HubUser, response: httpx.Response) -> str:
    """Why a spawn did not happen: the API's error, or, when the API had answered 202 (spawn
    under way) before the spawn failed, the failure event of the hub's progress stream."""
    if response.status_code >= 400:
        return str(response.json()["message"])
    return user.spawn_failure()


def test_two_gpu_spawns_on_one_gpu_one_starts_the_other_is_refused_naming_the_holder(
    hub: HubStack, alice: HubUser, bob: HubUser
) -> None:
    with ThreadPoolExecutor(2) as pool:
        answers = dict(
            zip(
                (alice, bob),
                pool.map(lambda user: user.start_server("gpu-1"), (alice, bob)),
                strict=True,
            )
        )
    started = [user for user, answer in answers.items() if answer.status_code in (201, 202)]
    assert started, {user.name: answer.text for user, answer in answers.items()}
    # A 202 only says the spawn is under way: wait for whichever comes up.
    ready = []
    for user in started:
        try:
            user.wait_ready()
            ready.append(user)
        except AssertionError:
            pass
    assert len(ready) == 1, f"exactly one GPU spawn should succeed, got {[u.name for u in ready]}"
    [holder] = ready
    [refused] = [user for user in (alice, bob) if user is not holder]

    message = refusal_message(refused, answers[refused])
    if "All GPUs of this machine are in use" in message:  # the pool's words name the holder
        assert f"GPU 0: {holder.name}" in message
    else:
        assert "No H800 GPU is free for PyTorch · 1× H800 now (0 of 1 free)" in message
    assert refused.server() is None

    state = hub.spawner_state(holder.name)
    assert state["gpus"] == ["0"]
    environment = process_environment(hub.server_process(holder.name)[0])
    assert environment["CUDA_VISIBLE_DEVICES"] == "0"
    assert environment["SUBSIDYHUB_PROFILE"] == "gpu-1"

    # The refused spawn left nothing running in the ledger: nobody pays for it.
    me = service_get(hub, "me", refused.new_token()).json()
    assert me["sessions"] == []
    holder_me = service_get(hub, "me", holder.new_token()).json()
    assert [(s["profile"], s["gpu_count"]) for s in holder_me["sessions"]] == [("gpu-1", 1)]


def test_a_project_cap_that_refuses_anyway_is_named_rather_than_the_full_pool(
    hub: HubStack, alice: HubUser, bob: HubUser
) -> None:
    """With GPU 0 taken, a spawn in a project capped at no GPUs is told about the cap (which its
    manager can change), not that the GPUs are taken; a spawn every other rule admits hears
    that none is free and may queue. Asking the policy wrote nothing."""
    hub.admin("project", "create", "capped-gpus", "--name", "Capped GPUs")
    hub.admin("allocate", "capped-gpus", "100")
    hub.admin("member", "add", "capped-gpus", "dave")
    hub.admin("quota", "set", "capped-gpus", "--project-max-gpus", "0")
    assert alice.start_server("gpu-1").status_code in (201, 202)
    alice.wait_ready()
    dave = HubUser(hub, "dave")
    try:
        capped = refusal_message(dave, dave.start_server("gpu-1"))
        assert capped.startswith("Project Capped GPUs may use 0 GPUs at once"), capped
        assert dave.server() is None

        full = refusal_message(bob, bob.start_server("gpu-1"))
        assert full.startswith("No H800 GPU is free for PyTorch · 1× H800 now (0 of 1 free)"), full
        assert "Join the queue" in full

        for user in (dave, bob):
            assert service_get(hub, "me", user.new_token()).json()["sessions"] == []

        # Bob's spawn page says so before he tries: gpu-1 offers the queue (no config key),
        # and the CPU profile, which can start, is chosen.
        page = bob.http.get("/hub/spawn").text
        card = page.split('data-profile="gpu-1"', 1)[1].split("</label>", 1)[0]
        assert 'data-queue="yes" value="gpu-1"' in card
        assert "0 of 1 H800 free now" in card
        assert "No H800 GPU is free now. Pick it and join the queue" in card
        assert 'value="cpu-small" checked' in page
        assert "local.gpus" not in page
        assert re.search(r'value="cpu-small"\s+checked', page)
    finally:
        dave.stop_server()
        dave.close()
