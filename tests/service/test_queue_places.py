"""The service's per-second keeping of a queue's places (service/queue_places.py).

A real SQLite ledger; the clock that ages the kept answer is a stand-in so the test does not
sleep.
"""

from __future__ import annotations

from subsidyhub.ledger import queue
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.service.queue_places import QueuePlaces
from subsidyhub.settings import parse_settings
from tests.conftest import TEST_CONFIG
from tests.ledger.helpers import T0, make_project


def test_places_are_kept_for_a_second_unless_the_queue_changes(tmp_path, monkeypatch) -> None:
    settings = parse_settings(TEST_CONFIG | {"gpu_capacity": {"h800": 1}}, "test")
    db = Database(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    upgrade(db, settings)
    make_project(db, settings, "lab", members=("ann", "ben"))
    computed: list[int] = []
    real = queue.places

    def counting(session, settings_, gpu_type, now_ms):
        computed.append(now_ms)
        return real(session, settings_, gpu_type, now_ms)

    monkeypatch.setattr(queue, "places", counting)
    seconds = [100.0]
    kept = QueuePlaces(settings, monotonic=lambda: seconds[0])

    def join(user: str) -> None:
        with db.write() as session:
            queue.join(
                session,
                settings,
                username=user,
                project_slug="lab",
                profile_slug="gpu-1",
                server_name="",
                now_ms=T0,
            )

    def users() -> list[str]:
        with db.read() as session:
            return [p.entry.username for p in kept.of_type(session, "h800", T0)]

    try:
        join("ann")
        assert users() == ["ann"]
        seconds[0] += 0.5
        assert users() == ["ann"] and len(computed) == 1  # kept
        join("ben")  # the queue changed: seen at once
        assert users() == ["ann", "ben"] and len(computed) == 2
        seconds[0] += 1.1  # a second passed: computed again (waits move with time)
        assert users() == ["ann", "ben"] and len(computed) == 3
    finally:
        db.dispose()
