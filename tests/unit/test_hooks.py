"""The spawn hook against an unreachable service: fail closed with a message, or fail open.

A real HTTP client talks to a loopback port where nothing listens (the service is down);
no fake stands in for the service.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from subsidyhub.hubplugin.client import SubsidyClient
from subsidyhub.hubplugin.hooks import SPAWN_CHECKS, UNAVAILABLE, SubsidyHooks
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


def hooks(fail_open: bool) -> SubsidyHooks:
    settings = parse_settings(TEST_CONFIG | {"fail_open": fail_open}, "test")
    return SubsidyHooks(
        settings,
        SubsidyClient(f"http://127.0.0.1:{free_port()}/services/subsidy/api/v1/", "t", timeout=2),
    )


def count(result: str) -> float:
    return SPAWN_CHECKS.labels(result)._value.get()


async def test_unreachable_service_refuses_the_spawn_with_a_message():
    before = count("unavailable")
    with pytest.raises(SpawnException) as refused:
        await hooks(fail_open=False).pre_spawn(spawner({"profile": "cpu-small"}))
    assert refused.value.message == UNAVAILABLE
    assert refused.value.status_code == 503
    assert count("unavailable") == before + 1


async def test_fail_open_lets_the_spawn_through_and_counts_it():
    before = count("fail_open")
    await hooks(fail_open=True).pre_spawn(spawner({"profile": "cpu-small"}))
    assert count("fail_open") == before + 1


def test_unknown_profile_and_option_are_refused_before_anything_starts():
    with pytest.raises(
        SpawnException, match=r"No such profile: big\. Options include: cpu-small, gpu-1, gpu-2"
    ):
        hooks(False).apply_user_options(spawner({}), {"profile": "big"})
    with pytest.raises(SpawnException, match="Unknown option image"):
        hooks(False).apply_user_options(spawner({}), {"profile": "cpu-small", "image": "x"})
