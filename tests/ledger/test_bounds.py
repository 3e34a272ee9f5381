"""Money stays within the declared bounds, whoever enters it (SQLite and PostgreSQL).

The ledger is where every entry point (API, CLI, admin page, rosters) ends up, so the bounds are
checked here: an allocation no larger than ``bounds.max_amount``, a correction that cannot make a
balance negative, prices under ``bounds.max_price_per_hour`` and large price moves only when
confirmed, no control characters in names and notes. A refused change writes nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import admission, prices, projects
from subsidyhub.ledger.accounts import load_account, verify
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.metering import charge_until
from subsidyhub.ledger.models import Allocation, AuditEntry, PriceVersion
from subsidyhub.ledger.prices import NeedsConfirmation
from subsidyhub.money import parse_amount
from subsidyhub.settings import Settings, parse_settings

from ..conftest import TEST_CONFIG
from .helpers import HOUR, T0, make_project


def count(db: Database, model: type) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def allocate(db: Database, settings: Settings, amount: str, **kwargs: object) -> None:
    with db.write() as session:
        projects.add_allocation(
            session,
            settings,
            "test",
            "demo",
            amount_micro=parse_amount(amount, allow_negative=True),
            at_ms=kwargs.pop("at_ms", T0 + HOUR),  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("amount", "options", "fragment"),
    [
        ("100000000.000001", {}, "larger than one entry may be (100000000.00, bounds.max_amount"),
        ("-501", {"correction": True, "note": "typo"}, "would take project demo below zero"),
        ("-1", {}, "to reduce an allocation, record a correction"),
        ("5", {"correction": True, "note": "x"}, "a correction removes funds"),
        ("5", {"valid_from_ms": T0, "valid_until_ms": T0 + HOUR}, "is already past"),
        ("5", {"note": "grant\x00 42"}, "control character U+0000"),
    ],
)
def test_bad_allocations_are_refused_and_write_nothing(
    ledger_db: Database, settings: Settings, amount: str, options: dict, fragment: str
) -> None:
    make_project(ledger_db, settings, amount="500")
    before = (count(ledger_db, Allocation), count(ledger_db, AuditEntry))
    with pytest.raises(InvalidInput) as refused:
        allocate(ledger_db, settings, amount, **options)
    assert fragment in refused.value.message
    assert (count(ledger_db, Allocation), count(ledger_db, AuditEntry)) == before


def test_a_correction_takes_at_most_what_is_left_and_overdraft_comes_only_from_charges(
    ledger_db: Database, settings: Settings
) -> None:
    make_project(ledger_db, settings, amount="10")
    allocate(ledger_db, settings, "-10", correction=True, note="all of it back")
    with ledger_db.read() as session:
        assert load_account(session, projects.get_project(session, "demo"), T0 + HOUR).balance == 0
    allocate(ledger_db, settings, "3")
    # A server runs past the balance: that, and only that, is an overdraft.
    with ledger_db.write() as session:
        admitted = admission.admit(
            session,
            settings,
            username="alice",
            project_slug="demo",
            profile_slug="cpu-small",
            server_name="",
            now_ms=T0 + HOUR,
        )
    charge_until(ledger_db, T0 + 11 * HOUR)  # 10 h × 0.98/h of subsidy, with 3.00 allocated
    with ledger_db.read() as session:
        project = projects.get_project(session, "demo")
        assert load_account(session, project, T0 + 11 * HOUR).balance < 0
        assert verify(session) == []
    with pytest.raises(InvalidInput, match="would take project demo below zero"):
        allocate(ledger_db, settings, "-0.01", correction=True, note="x", at_ms=T0 + 11 * HOUR)
    assert admitted.session_id


def bounded(**bounds: object) -> Settings:
    return parse_settings(TEST_CONFIG | {"bounds": bounds}, "test")


def set_price(db: Database, settings: Settings, *, confirm: bool = False, **price: int) -> None:
    with db.write() as session:
        prices.set_prices(session, settings, "test", at_ms=T0, confirm=confirm, **price)


def test_prices_stay_under_the_ceiling_and_large_moves_need_a_confirmation(
    ledger_db: Database,
) -> None:
    settings = bounded(max_price_per_hour=100, price_change_factor=10)
    versions = count(ledger_db, PriceVersion)
    with pytest.raises(InvalidInput, match=r"h800 GPU-h price 100\.01 is more than the ceiling"):
        set_price(ledger_db, settings, gpu={"h800": parse_amount("100.01")})
    with pytest.raises(NeedsConfirmation) as large:
        set_price(ledger_db, settings, gpu={"h800": parse_amount("3.59")})  # 36.00 ÷ 10.03
    assert "h800 GPU-h 36.00 → 3.59" in large.value.message
    assert count(ledger_db, PriceVersion) == versions
    set_price(ledger_db, settings, gpu={"h800": parse_amount("3.59")}, confirm=True)
    set_price(ledger_db, settings, gpu={"h800": parse_amount("35.90")})  # exactly 10×: allowed
    assert count(ledger_db, PriceVersion) == versions + 2
    with pytest.raises(InvalidInput, match="unknown GPU types tpu"):
        set_price(ledger_db, settings, gpu={"tpu": parse_amount("1")})


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            lambda s, st: projects.create_project(s, st, "t", slug="p", name="A\x00B", at_ms=T0),
            "U+0000",
        ),
        (lambda s, st: projects.set_member(s, "t", "demo", "eve\x07", at_ms=T0), "U+0007"),
        (lambda s, st: projects.update_project(s, "t", "demo", name="x" * 201), "at most 200"),
    ],
)
def test_names_with_control_characters_are_refused(
    ledger_db: Database, settings: Settings, change, fragment: str
) -> None:
    make_project(ledger_db, settings)
    with pytest.raises(InvalidInput) as refused, ledger_db.write() as session:
        change(session, settings)
    assert fragment in refused.value.message
