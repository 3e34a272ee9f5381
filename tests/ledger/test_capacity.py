"""GPU capacity in admission, the queue and reservations, on SQLite and PostgreSQL (issue 16).

The races start every admission at once from its own thread and database connection, as in
``test_admission``: capacity is counted under the type's lock, so it is never exceeded.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from subsidyhub.errors import InvalidInput, NotFound, Refused
from subsidyhub.ledger import admission, capacity, queue, reservations, stops, utilisation
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import AuditEntry, QueueEntry, SpawnSession
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.timeutil import WEEK_MS
from tests.conftest import TEST_CONFIG

from .helpers import HOUR, T0, make_project

MINUTE = 60_000
USERS = [f"user{n}" for n in range(8)]


@pytest.fixture
def settings() -> Settings:
    return parse_settings(TEST_CONFIG | {"gpu_capacity": {"h800": 4}}, "test-config")


@pytest.fixture
def centre(ledger_db: Database, settings: Settings) -> Database:
    make_project(ledger_db, settings, "lab", members=tuple(USERS))
    make_project(ledger_db, settings, "comp3340", members=("student1", "student2"))
    return ledger_db


def admit(db: Database, settings: Settings, user: str, *, project: str = "lab", at: int = T0):
    with db.write() as session:
        return admission.admit(
            session,
            settings,
            username=user,
            project_slug=project,
            profile_slug="gpu-1",
            server_name="",
            now_ms=at,
        )


def refusal(db: Database, settings: Settings, user: str, **kwargs) -> Refused:
    with pytest.raises(Refused) as refused:
        admit(db, settings, user, **kwargs)
    return refused.value


def join(db: Database, settings: Settings, user: str, *, at: int, project: str = "lab"):
    with db.write() as session:
        entry = queue.join(
            session,
            settings,
            username=user,
            project_slug=project,
            profile_slug="gpu-1",
            server_name="",
            now_ms=at,
        )
        return entry.id


def stop(db: Database, session_id: int, at: int) -> None:
    with db.write() as session:
        admission.stop(session, session_id, now_ms=at, reason="user")


def offers(db: Database, settings: Settings, at: int) -> list[str]:
    with db.write() as session:
        made, _expired = queue.make_offers(session, settings, "h800", at)
        return [offer.username for offer in made]


def running(db: Database) -> int:
    with db.read() as session:
        return session.scalar(
            select(func.coalesce(func.sum(SpawnSession.gpu_count), 0)).where(
                SpawnSession.stopped_ms.is_(None)
            )
        )


def test_eight_users_racing_for_four_gpus_four_start_and_four_are_told_to_queue(centre, settings):
    barrier = threading.Barrier(len(USERS))

    def attempt(user: str) -> str:
        barrier.wait()
        try:
            admit(centre, settings, user)
            return "admitted"
        except Refused as refused:
            return refused.reason

    with ThreadPoolExecutor(len(USERS)) as pool:
        results = list(pool.map(attempt, USERS))
    assert sorted(results) == ["admitted"] * 4 + ["gpus_busy"] * 4
    assert running(centre) == 4
    # Again, for one who was refused: the message says what to do.
    refused = USERS[results.index("gpus_busy")]
    message = refusal(centre, settings, refused).message
    assert "No H800 GPU is free for PyTorch · 1× H800 now (0 of 4 free)" in message
    assert "Join the queue" in message


def test_the_queue_hands_each_freed_gpu_to_its_head_and_nobody_is_skipped(centre, settings):
    sessions = [admit(centre, settings, user).session_id for user in USERS[:4]]
    for n, user in enumerate(USERS[4:]):
        join(centre, settings, user, at=T0 + n * 1000)
    assert offers(centre, settings, T0 + 5000) == []
    # A walk-in never passes the people waiting, even the moment a GPU frees.
    stop(centre, sessions[0], T0 + 10_000)
    assert "4 waiting in the queue" in refusal(centre, settings, "user0", at=T0 + 10_001).message
    assert offers(centre, settings, T0 + 10_002) == ["user4"]
    # The offer holds the GPU: still nothing for anyone else, nor a second offer.
    assert offers(centre, settings, T0 + 10_003) == []
    assert refusal(centre, settings, "user5", at=T0 + 10_004).reason == "gpus_busy"
    claimed = admit(centre, settings, "user4", at=T0 + 11_000)
    with centre.read() as session:
        entry = session.scalars(select(QueueEntry).where(QueueEntry.username == "user4")).one()
        assert (entry.state, entry.session_id) == ("admitted", claimed.session_id)
    # Two stops: two offers, in arrival order.
    stop(centre, sessions[1], T0 + 20_000)
    stop(centre, sessions[2], T0 + 20_000)
    assert offers(centre, settings, T0 + 20_001) == ["user5", "user6"]
    # user6 starts her server; user5 never comes: the offer expires and passes on to user7.
    admit(centre, settings, "user6", at=T0 + 30_000)
    expiry = T0 + 20_001 + settings.queue.offer_ms
    assert offers(centre, settings, expiry - 1) == []
    assert offers(centre, settings, expiry) == ["user7"]
    with centre.read() as session:
        states = dict(session.execute(select(QueueEntry.username, QueueEntry.state)).all())
    assert states == {
        "user4": "admitted",
        "user5": "expired",
        "user6": "admitted",
        "user7": "offered",
    }
    assert running(centre) == 3  # sessions[3], user4's and user6's; user7's offer holds the 4th


def test_leaving_passes_an_offer_on_and_a_server_waits_in_one_queue(centre, settings):
    sessions = [admit(centre, settings, user).session_id for user in USERS[:4]]
    join(centre, settings, "user4", at=T0 + 1)
    first = join(centre, settings, "user5", at=T0 + 2)
    assert join(centre, settings, "user5", at=T0 + 3) == first  # the same place again
    stop(centre, sessions[0], T0 + 10)
    assert offers(centre, settings, T0 + 11) == ["user4"]
    with centre.write() as session:
        queue.leave(session, "user4", "", now_ms=T0 + 12, actor="user4")
    assert offers(centre, settings, T0 + 13) == ["user5"]
    with centre.write() as session, pytest.raises(NotFound, match="not waiting in any queue"):
        queue.leave(session, "user4", "", now_ms=T0 + 14, actor="user4")


def test_starting_the_server_with_a_cpu_profile_ends_its_place_as_left(centre, settings):
    for user in USERS[:4]:
        admit(centre, settings, user)
    join(centre, settings, "user4", at=T0 + 1)
    with centre.write() as session:
        admission.admit(
            session,
            settings,
            username="user4",
            project_slug="lab",
            profile_slug="cpu-small",
            server_name="",
            now_ms=T0 + 2,
        )
    with centre.read() as session:
        entry = session.scalars(select(QueueEntry).where(QueueEntry.username == "user4")).one()
    assert (entry.state, entry.session_id, entry.ended_ms) == ("left", None, T0 + 2)


def test_a_place_is_refused_for_what_admission_would_refuse_anyway(centre, settings):
    with centre.write() as session, pytest.raises(Refused) as refused:
        queue.join(
            session,
            settings,
            username="student1",
            project_slug="lab",
            profile_slug="gpu-1",
            server_name="",
            now_ms=T0,
        )
    assert refused.value.reason == "not_member"
    with centre.write() as session, pytest.raises(InvalidInput, match="has no GPUs"):
        queue.join(
            session,
            settings,
            username="user0",
            project_slug="lab",
            profile_slug="cpu-small",
            server_name="",
            now_ms=T0,
        )


def _entry(entry_id: int, project_id: int, joined: int, priority: int = 0) -> QueueEntry:
    return QueueEntry(
        id=entry_id, project_id=project_id, joined_ms=joined, priority=priority, gpu_count=1
    )


@pytest.mark.parametrize(
    ("fair", "used_hours", "priorities", "expected"),
    [
        # FIFO: arrival order, whatever was used.
        (False, {1: 500, 2: 0}, {}, [10, 11, 12, 13]),
        # A higher priority class goes first, FIFO within it.
        (False, {}, {12: 1, 13: 1}, [12, 13, 10, 11]),
        # Fair share, 4 GPUs × 168 h split between two projects = 336 h each: project 1 used
        # 400 h (over its share), project 2 none: project 2's entries first, FIFO within.
        (True, {1: 400, 2: 0}, {}, [11, 13, 10, 12]),
        # Both under their share: arrival order.
        (True, {1: 100, 2: 200}, {}, [10, 11, 12, 13]),
        # Priority still comes before share.
        (True, {1: 400, 2: 0}, {10: 1}, [10, 11, 13, 12]),
    ],
)
def test_queue_order(fair, used_hours, priorities, expected):
    waiting = [
        _entry(entry_id, project_id, joined, priorities.get(entry_id, 0))
        for entry_id, project_id, joined in [(10, 1, 1), (11, 2, 2), (12, 1, 3), (13, 2, 4)]
    ]
    used = {project: hours * HOUR for project, hours in used_hours.items()}
    ordered = queue.order(waiting, fair_share=fair, used_ms=used, capacity_gpus=4)
    assert [entry.id for entry in ordered] == expected


def _holder(end_known: int | None, end_expected: int | None, project: int = 1, gpus: int = 1):
    return capacity.Holder(project, gpus, end_known, end_expected)


@pytest.mark.parametrize(
    ("holders", "windows", "queue_", "expected", "latest"),
    [
        # One GPU free: the first starts now; the second when a session is expected to end.
        (
            [_holder(None, 30), _holder(90, 60), _holder(None, 120)],
            [],
            [(1, 1), (1, 1)],
            [0, 30],
            [0, 90],
        ),
        # Nothing known ends: the estimate from the usual length, no latest start.
        (
            [_holder(None, 40)] * 4,
            [],
            [(1, 1), (1, 2)],
            [40, 40],
            [None, None],
        ),
        # A window reserving 2 GPUs for project 9 from 50 to 80: project 1 waits past it.
        (
            [_holder(20, 20), _holder(20, 20), _holder(None, 200), _holder(None, 200)],
            [capacity.Window(1, 9, "COMP3340", 2, 50, 80)],
            [(1, 2)],
            [20],
            [20],
        ),
    ],
)
def test_wait_estimates_walk_the_known_and_expected_ends(
    holders, windows, queue_, expected, latest
):
    state = capacity.TypeState("h800", 4, "gpu_capacity", tuple(holders), tuple(windows))
    assert capacity.queue_starts(state, queue_, 0, typical_ms=1000, expected=True) == expected
    assert capacity.queue_starts(state, queue_, 0, typical_ms=1000, expected=False) == latest


def test_a_weekly_reservation_keeps_gpus_for_the_class_and_caps_an_earlier_session(
    centre, settings
):
    tuesday_14 = T0 + 2 * 24 * HOUR + 14 * HOUR
    with centre.write() as session:
        reservations.create(
            session,
            settings,
            reservations.Request("comp3340", "h800", 3, tuesday_14, tuesday_14 + 2 * HOUR, 13),
            actor="admin",
            now_ms=T0,
        )
    # Before the window anyone may start; the fourth GPU is not reserved, so no cap for it.
    first = admit(centre, settings, "user0", at=tuesday_14 - 3 * HOUR)
    assert first.max_stop_ms is None
    # The second needs a reserved GPU at 14:00: admitted until then, and told why.
    second = admit(centre, settings, "user1", at=tuesday_14 - 80 * MINUTE)
    assert second.max_stop_ms == tuesday_14
    with centre.read() as session:
        assert session.get(SpawnSession, second.session_id).max_stop_reason == stops.RESERVATION
    # Too close to the window for the minimum start: refused, naming the class.
    late = refusal(centre, settings, "user2", at=tuesday_14 - 10 * MINUTE)
    assert late.reason == "gpus_reserved"
    assert "reserved for Comp3340 from 14:00 UTC" in late.message
    # During the window: the students get the reserved GPUs, others do not.
    assert refusal(centre, settings, "user2", at=tuesday_14 + MINUTE).reason == "gpus_busy"
    for student in ("student1", "student2"):
        admit(centre, settings, student, project="comp3340", at=tuesday_14 + MINUTE)
    # A week later the same hours are kept again; a second reservation beyond capacity is not.
    with centre.write() as session, pytest.raises(Refused) as refused:
        reservations.create(
            session,
            settings,
            reservations.Request(
                "lab", "h800", 2, tuesday_14 + WEEK_MS + HOUR, tuesday_14 + WEEK_MS + 4 * HOUR
            ),
            actor="admin",
            now_ms=T0,
        )
    assert refused.value.reason == "reservations_exceed_capacity"
    assert "would add up to 5 of the 4 there are" in refused.value.message


def test_a_new_reservation_moves_the_end_of_servers_that_would_hold_its_gpus(centre, settings):
    sessions = [admit(centre, settings, user).session_id for user in USERS[:4]]
    window = T0 + 5 * HOUR
    with centre.write() as session:
        reservations.create(
            session,
            settings,
            reservations.Request("comp3340", "h800", 2, window, window + HOUR),
            actor="admin",
            now_ms=T0 + HOUR,
        )
    with centre.read() as session:
        ends = [session.get(SpawnSession, sid).max_stop_ms for sid in sessions]
        moved = session.scalar(select(func.count()).where(AuditEntry.action == "session.end_moved"))
    # The two started last stop at the window's start; the audit says so.
    assert sorted(ends, key=lambda end: end or 0) == [None, None, window, window]
    assert moved == 2


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"gpu_count": 5}, "the centre has 4 H800 GPUs, reserve 1 to 4"),
        ({"gpu_count": 0}, "reserve 1 to 4"),
        ({"gpu_type": "tpu"}, "unknown GPU type 'tpu'"),
        ({"gpu_type": "a100"}, "has not declared how many it runs"),
        ({"ends_ms": T0 + HOUR}, "give an end 1 minute to 7 days after its start"),
        ({"ends_ms": T0 + 2 * HOUR + 8 * 24 * HOUR}, "give an end 1 minute to 7 days"),
        ({"weeks": 105}, "give 1 to 104"),
        ({"starts_ms": T0 - 30 * 24 * HOUR, "ends_ms": T0 - 29 * 24 * HOUR}, "in the past"),
        ({"note": "x" * 201}, "give at most 200"),
    ],
)
def test_reservation_bounds_name_the_field_and_the_range(centre, settings, change, fragment):
    request = {
        "project": "comp3340",
        "gpu_type": "h800",
        "gpu_count": 2,
        "starts_ms": T0 + 2 * HOUR,
        "ends_ms": T0 + 3 * HOUR,
    } | change
    with centre.write() as session, pytest.raises(InvalidInput) as refused:
        reservations.create(
            session, settings, reservations.Request(**request), actor="admin", now_ms=T0
        )
    assert fragment in refused.value.message


@pytest.mark.parametrize(
    ("held", "used"),
    [
        ([], 0),
        # 1 GPU for the whole hour of a 3-GPU window: a third used.
        ([(0, HOUR, 1)], HOUR),
        # 5 GPUs at once count as the 3 reserved; outside the window nothing counts.
        ([(-HOUR, 2 * HOUR, 5)], 3 * HOUR),
        # Two half-hour sessions of 2 GPUs overlapping for 15 minutes: 3 GPUs then.
        (
            [(0, HOUR // 2, 2), (HOUR // 4, 3 * HOUR // 4, 2)],
            2 * HOUR // 4 + 3 * HOUR // 4 + 2 * HOUR // 4,
        ),
    ],
)
def test_reserved_gpu_hours_used_are_the_lesser_of_reserved_and_held(held, used):
    assert utilisation.used_within(3, 0, HOUR, held) == used


def test_the_utilisation_report_counts_reserved_but_unused_gpu_hours(centre, settings):
    window = T0 + HOUR
    with centre.write() as session:
        reservations.create(
            session,
            settings,
            reservations.Request("comp3340", "h800", 2, window, window + HOUR, weeks=2),
            actor="admin",
            now_ms=T0,
        )
    # One student uses one reserved GPU for half the first window.
    student = admit(centre, settings, "student1", project="comp3340", at=window)
    stop(centre, student.session_id, window + HOUR // 2)
    with centre.read() as session:
        report = utilisation.utilisation(session, settings, "2026-12", T0 + 10 * 24 * HOUR)
    [h800] = [row for row in report.rows if row.gpu_type == "h800"]
    # Two windows of 2 GPUs × 1 h so far; of the 4 GPU-hours, 0.5 were used.
    assert (h800.reserved_ms, h800.reserved_unused_ms) == (4 * HOUR, 4 * HOUR - HOUR // 2)
    assert report.as_dict()["totals"]["reserved_unused_gpu_hours"] == "3.5000"
