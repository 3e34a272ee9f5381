"""The hooks against an unreachable service: a spawn fails closed with a message, or fails
open; a stop is kept in the outbox with the instant the hub saw it.

A real HTTP client talks to a loopback port where nothing listens (the service is down);
no fake stands in for the service.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from subsidyhub.hubplugin.client import SubsidyClient
from subsidyhub.hubplugin.hooks import HUB_STOP_REASON, SPAWN_CHECKS, UNAVAILABLE, SubsidyHooks
from subsidyhub.hubplugin.outbox import StopOutbox
from subsidyhub.hubplugin.spawn_exception import SpawnException
from subsidyhub.netutil import free_port
from subsidyhub.settings import parse_settings

from ..conftest import TEST_CONFIG


def spawner(options: dict[str, str]) -> SimpleNamespace:
    """The attributes of a JupyterHub spawner the hook reads and writes."""
    return SimpleNamespace(
        user=SimpleNamespace(name="alice"),
        name="",
        user_options=options,
        environment={},
        _log_name="alice/",
    )


def hooks(fail_open: bool, outbox_dir: Path) -> SubsidyHooks:
    settings = parse_settings(TEST_CONFIG | {"fail_open": fail_open}, "test")
    client = SubsidyClient(
        f"http://127.0.0.1:{free_port()}/services/subsidy/api/v1/", "t", timeout=2
    )
    return SubsidyHooks(settings, client, StopOutbox(outbox_dir, client))


def count(result: str) -> float:
    return SPAWN_CHECKS.labels(result)._value.get()


async def test_unreachable_service_refuses_the_spawn_with_a_message(tmp_path):
    before = count("unavailable")
    refusing, server = hooks(False, tmp_path), spawner({"profile": "cpu-small"})
    with pytest.raises(SpawnException) as refused:
        await refusing.pre_spawn(server)
    assert refused.value.message == UNAVAILABLE
    assert refused.value.status_code == 503
    assert count("unavailable") == before + 1
    # JupyterHub runs post_stop after the failed spawn: nothing ran, so nothing is reported.
    await refusing.post_stop(server)
    assert list(tmp_path.iterdir()) == []


async def test_fail_open_lets_the_spawn_through_and_counts_it(tmp_path):
    before = count("fail_open")
    await hooks(True, tmp_path).pre_spawn(spawner({"profile": "cpu-small"}))
    assert count("fail_open") == before + 1


def test_unknown_profile_and_option_are_refused_before_anything_starts(tmp_path):
    with pytest.raises(
        SpawnException, match=r"No such profile: big\. Options include: cpu-small, gpu-1, gpu-2"
    ):
        hooks(False, tmp_path).apply_user_options(spawner({}), {"profile": "big"})
    with pytest.raises(SpawnException, match="Unknown option image"):
        hooks(False, tmp_path).apply_user_options(
            spawner({}), {"profile": "cpu-small", "image": "x"}
        )


async def test_a_stop_the_service_cannot_hear_is_kept_with_the_time_the_hub_saw(tmp_path):
    outbox = tmp_path / "outbox"
    before = time.time_ns() // 1_000_000
    await hooks(False, outbox).post_stop(spawner({"profile": "cpu-small"}))
    after = time.time_ns() // 1_000_000

    [kept] = list(outbox.iterdir())
    notice = json.loads(kept.read_text(encoding="utf-8"))
    assert notice["user"] == "alice" and notice["server_name"] == ""
    assert notice["reason"] == HUB_STOP_REASON
    assert before <= notice["stopped_ms"] <= after
    assert kept.name.startswith(f"{notice['stopped_ms']:013d}-")
