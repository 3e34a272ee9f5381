"""The private engine is shared: users join a running daemon at once, the last one out stops it.

Real components: Debian's ``dockerd`` on a data root of this test's own (not the image cache,
which other xdist workers may be using).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from subsidyhub.dockerd import PrivateDockerd, process_alive, unavailable

pytestmark = pytest.mark.slow


def test_users_share_one_daemon_and_the_last_out_stops_it(tmp_path: Path) -> None:
    reason = unavailable()
    if reason:
        pytest.skip(f"no private Docker engine can run here: {reason}")
    first = PrivateDockerd(tmp_path / "data").start()
    try:
        pid = int((first.run / "dockerd.pid").read_text())
        second = PrivateDockerd(tmp_path / "data")
        joining = threading.Thread(target=second.start)
        joining.start()
        joining.join(30)
        assert not joining.is_alive(), "the second user waited for the first to leave"
        first.close()
        assert process_alive(pid), "the first user out stopped a daemon still in use"
        with second.client() as client:
            assert client.ping()
        second.close()
        assert not process_alive(pid)
        assert not second.socket.exists()
    finally:
        first.close()
        shutil.rmtree(first.run, ignore_errors=True)
