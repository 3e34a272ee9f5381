"""The host GPU pool: exclusive, idempotent per owner, restorable after a hub restart."""

import ctypes.util

import pytest

from subsidyhub.hubplugin.gpus import GpuPool, PoolExhausted, discover_gpus


def test_assign_is_exclusive_and_release_frees():
    pool = GpuPool(["0", "1"])
    assert pool.assign("alice/", 1) == ["0"]
    assert pool.assign("alice/", 1) == ["0"]  # asking again changes nothing
    assert pool.assign("bob/", 1) == ["1"]
    with pytest.raises(
        PoolExhausted, match=r"0 of 2 free, 1 more needed \(GPU 0: alice, GPU 1: bob\)"
    ):
        pool.assign("carol/", 1)
    assert pool.release("alice/") == ["0"]
    assert pool.assign("carol/", 1) == ["0"]


def test_no_gpus_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PoolExhausted, match="This machine has no GPUs, and this profile needs 1"):
        GpuPool([]).assign("alice/", 1)
    # The person reads no config key; the admin finds it in the hub's log.
    assert "set local.gpus" in caplog.text


def test_restore_after_restart_keeps_assignments():
    pool = GpuPool(["0", "1", "2"])
    pool.restore("alice/", ["1"])
    pool.restore("bob/", ["1"])  # a conflicting claim is refused, the first holder keeps it
    pool.restore("bob/", ["9"])  # not in the pool
    assert pool.holders() == {"1": "alice/"}
    assert pool.assign("carol/", 2) == ["0", "2"]


def test_discovery_lists_indices_and_nothing_without_a_driver():
    gpus = discover_gpus()
    assert all(gpu.isdigit() for gpu in gpus)
    if ctypes.util.find_library("nvidia-ml") is None:
        assert gpus == []
