"""The shipped Alembic migrations produce exactly the schema the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from subsidyhub.ledger import projects
from subsidyhub.ledger.audit import entries
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.ledger.models import Base, PriceVersion

from .helpers import T0


def test_migrations_match_models(ledger_db):
    with ledger_db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_is_idempotent_and_seeds_prices_once(ledger_db, settings):
    upgrade(ledger_db, settings)
    with ledger_db.read() as session:
        versions = session.scalars(select(PriceVersion)).all()
    assert len(versions) == 1
    assert versions[0].gpu_micro == {"h800": 36_000_000, "a100": 24_000_000}


def test_admin_changes_are_audited_with_before_and_after(ledger_db, settings):
    with ledger_db.write() as session:
        projects.create_project(session, settings, "admin", slug="demo", name="Demo", at_ms=T0)
        projects.update_project(session, "admin", "demo", subsidy_bp=8000)
    with ledger_db.read() as session:
        log = entries(session, target="project:demo")
    assert [e.action for e in log] == ["project.update", "project.create"]
    assert log[0].before["subsidy_rate"] == "0.7" and log[0].after["subsidy_rate"] == "0.8"
    assert log[0].actor == "admin"
