"""Idle GPUs on statements and the utilisation report (issue 17), on SQLite and PostgreSQL.

Readings go through :func:`subsidyhub.ledger.idle.record`, as the service's sampler gives
them, across the November/December month bound and a plain UTC midnight; the idle GPU-hours
of the statements must equal what the samples recorded (each sample's ``idle_ms`` × the
server's GPUs, cut at the month bound), and their money the GPU part of each session's rate,
rounded as charges are.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import event, select
from typer.testing import CliRunner

from subsidyhub.ledger import admission, idle, projects, waste
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.models import GpuSample, IdleGpuDay, Project, SpawnSession
from subsidyhub.ledger.statements import Statement, statement
from subsidyhub.ledger.utilisation import utilisation
from subsidyhub.reports.statement_html import render_statement_html
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.timeutil import DAY_MS, MS_PER_HOUR, month_bounds
from tests.cli.conftest import CLI_ENV, Cli
from tests.conftest import TEST_CONFIG

from .helpers import HOUR, T0, Reading, make_project

MINUTE = 60_000
SAMPLE = 10 * MINUTE
DECEMBER = month_bounds("2026-12")
NOVEMBER = month_bounds("2026-11")
assert DECEMBER[0] == T0
# List prices per GPU-hour (TEST_CONFIG) and the default subsidy rate, in micro-units and bp.
PRICE = {"h800": 36_000_000, "a100": 24_000_000}
GPUS = {"gpu-1": ("h800", 1), "gpu-2": ("a100", 2)}
SUBSIDY_BP = 7000


@pytest.fixture
def settings() -> Settings:
    return parse_settings(
        TEST_CONFIG
        | {
            "idle_gpu": {
                "sample_seconds": SAMPLE // 1000,
                "threshold_percent": 5,
                "stop_after_minutes": 10080,
                "window_minutes": 1440,
            }
        },
        "test-config",
    )


def admit(db: Database, settings: Settings, user: str, project: str, profile: str, at: int) -> int:
    with db.write() as session:
        return admission.admit(
            session,
            settings,
            username=user,
            project_slug=project,
            profile_slug=profile,
            server_name="",
            now_ms=at,
        ).session_id


@dataclass
class Centre:
    """A ledger with GPU servers sampled over time, and every sample ever recorded."""

    db: Database
    settings: Settings
    sessions: dict[str, int]  # user → session id
    samples: dict[int, GpuSample]  # by id: rows leave the table after the plot's window

    def sample(self, at: int, **percent: int) -> None:
        with self.db.write() as session:
            idle.record(
                session,
                self.settings,
                {self.sessions[user]: Reading(pct) for user, pct in percent.items()},
                at,
            )
        with self.db.read() as session:
            for row in session.scalars(select(GpuSample)):
                session.expunge(row)
                self.samples.setdefault(row.id, row)

    def gpu_count(self, session_id: int) -> int:
        with self.db.read() as session:
            row = session.get(SpawnSession, session_id)
            assert row is not None
            return row.gpu_count

    def idle_within(self, start: int, end: int, user: str | None = None) -> dict[int, int]:
        """Wall idle ms per session that the samples put inside [start, end)."""
        wanted = None if user is None else self.sessions[user]
        within: dict[int, int] = {}
        for sample in self.samples.values():
            if wanted is not None and sample.session_id != wanted:
                continue
            begin, stop = max(start, sample.at_ms - sample.idle_ms), min(end, sample.at_ms)
            if begin < stop:
                within[sample.session_id] = within.get(sample.session_id, 0) + stop - begin
        return within

    def idle_gpu_ms(self, start: int, end: int, user: str | None = None) -> int:
        return sum(
            ms * self.gpu_count(sid) for sid, ms in self.idle_within(start, end, user).items()
        )

    def statement(self, month: str, *slugs: str) -> Statement:
        with self.db.read() as session:
            chosen = [projects.get_project(session, s) for s in slugs] if slugs else None
            return statement(session, month, self.settings.currency, chosen)


# Sampling starts 2 minutes past the hour, so that a sample's span straddles each midnight.
START = T0 - 4 * HOUR + 2 * MINUTE
# A plain midnight inside December: December 1 → 2, sampled again from two hours before it.
SECOND_NIGHT = T0 + DAY_MS
AGAIN = SECOND_NIGHT - 2 * HOUR + 2 * MINUTE


@pytest.fixture
def centre(ledger_db: Database, settings: Settings) -> Centre:
    """alice (1× h800) and bob (2× a100) in lab, carol (1× h800) in other, sampled every
    10 minutes from Nov 30 20:02 to Dec 1 02:02, then (after a gap the sampler was away)
    from Dec 1 22:02 to Dec 2 02:02, and charged up to the last sample."""
    make_project(
        ledger_db, settings, "lab", amount="50000", members=("alice", "bob"), at_ms=T0 - 2 * DAY_MS
    )
    make_project(
        ledger_db, settings, "other", amount="50000", members=("carol",), at_ms=T0 - 2 * DAY_MS
    )
    sessions = {
        "alice": admit(ledger_db, settings, "alice", "lab", "gpu-1", START),
        "bob": admit(ledger_db, settings, "bob", "lab", "gpu-2", START),
        "carol": admit(ledger_db, settings, "carol", "other", "gpu-1", START),
    }
    centre = Centre(ledger_db, settings, sessions, {})
    for phase_start, rounds in ((START, 36), (AGAIN, 24)):
        for k in range(1, rounds + 1):
            centre.sample(
                phase_start + k * SAMPLE,
                alice=80 if k % 4 == 0 else 1,  # three idle samples in four
                bob=3 if k % 2 == 0 else 60,  # every other sample idle
                carol=0,  # never busy
            )
    charge_until(ledger_db, SECOND_NIGHT + 2 * HOUR + 2 * MINUTE)
    return centre


def accrued(rate: int, bp: int, ms: int) -> tuple[int, int]:
    """(list, subsidy) for ``ms`` at ``rate`` per hour, each rounded once, half to even (as
    ``round`` does a Fraction): an independent restatement of the charges' rule."""
    return (
        round(Fraction(rate * ms, MS_PER_HOUR)),
        round(Fraction(rate * ms * bp, MS_PER_HOUR * 10_000)),
    )


def test_idle_gpu_hours_equal_the_samples_cut_at_the_month_bound(centre: Centre) -> None:
    straddling = [s for s in centre.samples.values() if s.at_ms - s.idle_ms < T0 < s.at_ms]
    assert straddling, "a sample's idle span crosses the month bound"
    november, december = centre.statement("2026-11"), centre.statement("2026-12")
    expected_nov = centre.idle_gpu_ms(*NOVEMBER)
    expected_dec = centre.idle_gpu_ms(*DECEMBER)
    assert november.total_idle.gpu_ms == expected_nov > 0
    assert december.total_idle.gpu_ms == expected_dec > 0
    # Every sample is accounted for, once: the months add up to the sessions' idle time.
    everything = sum(s.idle_ms * centre.gpu_count(s.session_id) for s in centre.samples.values())
    assert expected_nov + expected_dec == everything
    with centre.db.read() as session:
        recorded = sum(
            row.idle_gpu_ms * row.gpu_count for row in session.scalars(select(SpawnSession))
        )
    assert recorded == everything
    # The gap while the sampler was away counts at most two sample periods for carol.
    assert centre.idle_within(START + 36 * SAMPLE, AGAIN + SAMPLE, "carol") == {
        centre.sessions["carol"]: 2 * SAMPLE
    }
    # Carol's idle time lies on three UTC days: Nov 30, Dec 1 and Dec 2.
    with centre.db.read() as session:
        days = session.scalars(
            select(IdleGpuDay.day_ms)
            .where(IdleGpuDay.session_id == centre.sessions["carol"])
            .order_by(IdleGpuDay.day_ms)
        ).all()
    assert days == [T0 - DAY_MS, T0, T0 + DAY_MS]
    # Per user: each statement line carries its user's idle GPU-hours.
    for result, bounds in ((november, NOVEMBER), (december, DECEMBER)):
        by_user = {line.username: line for line in result.lines}
        assert set(by_user) == {"alice", "bob", "carol"}
        for user, line in by_user.items():
            assert line.idle.gpu_ms == centre.idle_gpu_ms(*bounds, user), (result.month, user)
            assert line.idle.sessions == 1
    assert december.as_dict()["totals"]["idle_gpu_hours"] == hours(expected_dec)


def hours(gpu_ms: int) -> str:
    """GPU-milliseconds as a statement shows them: hours to four decimals."""
    return f"{(Decimal(gpu_ms) / MS_PER_HOUR).quantize(Decimal('0.0001'))}"


def test_idle_money_is_the_gpu_share_of_the_rate_rounded_as_charges(centre: Centre) -> None:
    november, december = centre.statement("2026-11"), centre.statement("2026-12")
    for user, profile in (("alice", "gpu-1"), ("bob", "gpu-2"), ("carol", "gpu-1")):
        gpu_type, count = GPUS[profile]
        rate = PRICE[gpu_type] * count
        sid = centre.sessions[user]
        nov_ms = centre.idle_within(*NOVEMBER, user).get(sid, 0)
        dec_ms = centre.idle_within(*DECEMBER, user).get(sid, 0)
        [nov_line] = [line for line in november.lines if line.username == user]
        [dec_line] = [line for line in december.lines if line.username == user]
        assert (nov_line.idle.list_micro, nov_line.idle.subsidy_micro) == accrued(
            rate, SUBSIDY_BP, nov_ms
        )
        whole = accrued(rate, SUBSIDY_BP, nov_ms + dec_ms)
        before = accrued(rate, SUBSIDY_BP, nov_ms)
        assert (dec_line.idle.list_micro, dec_line.idle.subsidy_micro) == (
            whole[0] - before[0],
            whole[1] - before[1],
        )
        # The months of a session add up to its whole idle time's cost, rounded once.
        assert nov_line.idle.list_micro + dec_line.idle.list_micro == whole[0]
        for line in (nov_line, dec_line):
            # Part of the charges: the idle GPUs never cost more than the line's charges.
            assert 0 < line.idle.list_micro <= line.list_micro
            assert 0 < line.idle.subsidy_micro <= line.subsidy_micro
            assert line.idle.copay_micro == line.idle.list_micro - line.idle.subsidy_micro
            row = line.as_dict()
            assert Fraction(row["idle_list"]) == Fraction(row["idle_subsidy"]) + Fraction(
                row["idle_copay"]
            )
    totals = december.as_dict()["totals"]
    assert Fraction(totals["idle_list"]) == Fraction(totals["idle_subsidy"]) + Fraction(
        totals["idle_copay"]
    )
    assert Fraction(totals["idle_list"]) == sum(
        Fraction(line["idle_list"]) for line in december.as_dict()["lines"]
    )


def test_a_project_statement_holds_its_own_idle_gpus_only(centre: Centre) -> None:
    lab = centre.statement("2026-12", "lab")
    assert {line.username for line in lab.lines} == {"alice", "bob"}
    assert lab.total_idle.gpu_ms == centre.idle_gpu_ms(*DECEMBER, "alice") + centre.idle_gpu_ms(
        *DECEMBER, "bob"
    )
    other = centre.statement("2026-12", "other")
    assert other.total_idle.gpu_ms == centre.idle_gpu_ms(*DECEMBER, "carol")


def test_utilisation_reports_idle_gpus_per_type_and_project(centre: Centre) -> None:
    with centre.db.read() as session:
        report = utilisation(session, centre.settings, "2026-12")
    document = report.as_dict()
    rows = {row["gpu_type"]: row for row in document["rows"]}
    a100_idle = centre.idle_gpu_ms(*DECEMBER, "bob")
    h800_idle = centre.idle_gpu_ms(*DECEMBER, "alice") + centre.idle_gpu_ms(*DECEMBER, "carol")
    assert rows["a100"]["idle_gpu_hours"] == hours(a100_idle)
    assert rows["h800"]["idle_gpu_hours"] == hours(h800_idle)
    by_type = {row.gpu_type: row for row in report.rows}
    assert by_type["a100"].idle.gpu_ms == a100_idle
    expected_share = round(Fraction(100 * a100_idle, by_type["a100"].used_ms), 2)
    assert Fraction(rows["a100"]["idle_percent"]) == expected_share
    # The subsidy spent on idle GPUs equals the statements'.
    claimed = centre.statement("2026-12")
    assert report.total_idle == claimed.total_idle
    assert document["totals"]["idle_subsidy"] == claimed.as_dict()["totals"]["idle_subsidy"]
    projects_ = {row["project"]: row for row in document["projects"]}
    assert set(projects_) == {"lab", "other"}
    assert projects_["other"]["idle_gpu_hours"] == hours(centre.idle_gpu_ms(*DECEMBER, "carol"))
    lab = centre.statement("2026-12", "lab").as_dict()["totals"]
    assert (projects_["lab"]["used_gpu_hours"], projects_["lab"]["idle_subsidy"]) == (
        lab["gpu_hours"],
        lab["idle_subsidy"],
    )


def test_one_query_per_call_whatever_the_sessions(centre: Centre) -> None:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement_text: str, *_: Any) -> None:
        if "idle_gpu_days" in statement_text:
            seen.append(statement_text)

    engine = centre.db.read_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        with centre.db.read() as session:
            lines = waste.idle_between(session, *DECEMBER)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(lines) == 3
    assert len(seen) == 1


def test_idle_time_before_its_charge_makes_a_line_of_its_own(
    ledger_db: Database, settings: Settings
) -> None:
    make_project(ledger_db, settings, "lab", amount="500", members=("alice",), at_ms=T0)
    session_id = admit(ledger_db, settings, "alice", "lab", "gpu-1", T0 + HOUR)
    centre = Centre(ledger_db, settings, {"alice": session_id}, {})
    centre.sample(T0 + HOUR + SAMPLE, alice=0)  # sampled before the meter's first tick
    [line] = centre.statement("2026-12").lines
    assert (line.username, line.profile, line.gpu_type, line.sessions) == (
        "alice",
        "gpu-1",
        "h800",
        1,
    )
    assert (line.list_micro, line.duration_ms) == (0, 0)
    assert line.idle.gpu_ms == SAMPLE
    assert line.idle.list_micro == 6_000_000  # 10 minutes of 36.00/h


@pytest.mark.parametrize(
    ("rate", "bp", "before", "within", "expected"),
    [
        # One h800 for an hour at 70 %: 36.00 list, 25.20 subsidy, 10.80 co-pay.
        (36_000_000, 7000, 0, HOUR, (36_000_000, 25_200_000)),
        # Two a100s (48.00/h) for half an hour.
        (48_000_000, 7000, 0, HOUR // 2, (24_000_000, 16_800_000)),
        # Later in a session: the difference of two accruals, not a fresh start.
        (48_000_000, 7000, HOUR, HOUR // 2, (24_000_000, 16_800_000)),
        # Half a micro-unit rounds to even: 0.5 → 0, and the second half gets 1 (1.0 − 0).
        (1, 0, 0, HOUR // 2, (0, 0)),
        (1, 0, HOUR // 2, HOUR // 2, (1, 0)),
        (3, 0, 0, HOUR // 2, (2, 0)),  # 1.5 → 2
        # 7 micro-units/h for 1 ms at 50 %: both parts round to 0; for 1 h, 7 and 3.5 → 4.
        (7, 5000, 0, 1, (0, 0)),
        (7, 5000, 0, HOUR, (7, 4)),
        # No subsidy, full subsidy, no time.
        (36_000_000, 0, 0, HOUR, (36_000_000, 0)),
        (36_000_000, 10_000, 0, HOUR, (36_000_000, 36_000_000)),
        (36_000_000, 7000, HOUR, 0, (0, 0)),
        # An odd span: 1 234 567 ms of 36.00/h = 12.345670 list; 70 %: 8.641969 subsidy.
        (36_000_000, 7000, 0, 1_234_567, (12_345_670, 8_641_969)),
    ],
)
def test_idle_cost_arithmetic(
    rate: int, bp: int, before: int, within: int, expected: tuple[int, int]
) -> None:
    cost = waste.idle_cost(rate, bp, before, within)
    assert (cost.list, cost.subsidy) == expected
    assert cost.copay == cost.list - cost.subsidy
    # Telescoping: a span cut anywhere costs the same as uncut.
    cut = within // 3
    first = waste.idle_cost(rate, bp, before, cut)
    second = waste.idle_cost(rate, bp, before + cut, within - cut)
    assert (first.list + second.list, first.subsidy + second.subsidy) == expected


@pytest.mark.parametrize(
    ("prices", "gpu_type", "count", "expected"),
    [
        ({"h800": 36_000_000}, "h800", 1, 36_000_000),
        ({"h800": 36_000_000, "a100": 24_000_000}, "a100", 2, 48_000_000),
        ({"h800": "36000000"}, "h800", 8, 288_000_000),  # JSON may hold a string
        ({"h800": 36_000_000}, "a100", 1, 0),  # no price: nothing charged for it
        ({"h800": 36_000_000}, None, 0, 0),  # a CPU server
        ({"h800": 36_000_000}, "h800", 0, 0),
    ],
)
def test_gpu_rate(prices: dict[str, Any], gpu_type: str | None, count: int, expected: int) -> None:
    assert waste.gpu_rate(prices, gpu_type, count) == expected


def test_a_period_is_whole_utc_days(ledger_db: Database) -> None:
    with ledger_db.read() as session, pytest.raises(ValueError, match="whole UTC days"):
        waste.idle_between(session, T0 + HOUR, T0 + DAY_MS)


# -- the statement as people get it: CLI (CSV, JSON, file) and HTML ----------------------------


def cli_for(centre: Centre, tmp_path: Path) -> Cli:
    config = tmp_path / "subsidyhub.yaml"
    config.write_text(
        yaml.safe_dump(TEST_CONFIG | {"database_url": centre.db.url, "centre_name": "Test Centre"}),
        encoding="utf-8",
    )
    return Cli(config, CliRunner(env=CLI_ENV))


def test_cli_statement_shows_the_idle_gpus(centre: Centre, tmp_path: Path) -> None:
    cli = cli_for(centre, tmp_path)
    december = centre.statement("2026-12").as_dict()
    rows = list(
        csv.DictReader(io.StringIO(cli.ok("statement", "--all", "--month", "2026-12").stdout))
    )
    assert [r["username"] for r in rows] == ["alice", "bob", "carol", ""]
    for row, line in zip(rows, december["lines"], strict=False):
        assert (row["idle_gpu_hours"], row["idle_list"], row["idle_subsidy"]) == (
            line["idle_gpu_hours"],
            line["idle_list"],
            line["idle_subsidy"],
        )
        assert row["idle_gpu_hours"] != "0.0000"
    total = rows[-1]
    assert total["project"] == "TOTAL"
    assert (total["idle_gpu_hours"], total["idle_subsidy"], total["idle_copay"]) == (
        december["totals"]["idle_gpu_hours"],
        december["totals"]["idle_subsidy"],
        december["totals"]["idle_copay"],
    )
    target = tmp_path / "lab.json"
    said = cli.ok(
        "statement", "lab", "--month", "2026-12", "--format", "json", "--output", str(target)
    ).stdout
    lab = centre.statement("2026-12", "lab")
    idle_hours = hours(lab.total_idle.gpu_ms)[:-2]  # two decimals, as people read it
    assert f"on {idle_hours} idle GPU-hours) to {target}" in said
    assert "of which HK$" in said


def test_html_statement_shows_idle_gpus_as_part_of_the_charges(centre: Centre) -> None:
    result = centre.statement("2026-12")
    page = render_statement_html(result, "Test Centre")
    assert page.count("Of these charges: idle GPUs") == 2  # one table per project
    assert "part of the charges above, not in addition to them" in page
    totals = result.as_dict()["totals"]
    grand = page.split('<tr class="idle-grand-total">', 1)[1].split("</tr>", 1)[0]
    for key in ("idle_list", "idle_subsidy", "idle_copay"):
        assert f'data-amount="{totals[key]}"' in grand
    assert f"{totals['idle_gpu_hours']} idle" in grand
    assert page.count('<tr class="idle-line">') == 3
    lab = page.split('data-project="lab"', 1)[1].split("</section>", 1)[0]
    lab_totals = centre.statement("2026-12", "lab").as_dict()["totals"]
    assert f'data-amount="{lab_totals["idle_subsidy"]}"' in lab.split("idle-project-total", 1)[1]


def test_html_statement_without_idle_gpus_has_no_idle_table(
    ledger_db: Database, settings: Settings
) -> None:
    make_project(ledger_db, settings, "lab", amount="500", members=("alice",), at_ms=T0)
    session_id = admit(ledger_db, settings, "alice", "lab", "gpu-1", T0 + HOUR)
    charge_until(ledger_db, T0 + 2 * HOUR)
    with ledger_db.read() as session:
        project = session.scalars(select(Project)).one()
        result = statement(session, "2026-12", "HKD", [project])
    assert session_id and result.lines and result.total_idle == waste.NONE
    page = render_statement_html(result, "Test Centre")
    assert "idle GPUs" not in page
    assert result.as_dict()["totals"]["idle_gpu_hours"] == "0.0000"
