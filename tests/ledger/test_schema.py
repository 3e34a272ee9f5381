"""The shipped Alembic migrations produce exactly the schema the models describe."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from subsidyhub.ledger import projects
from subsidyhub.ledger.audit import entries
from subsidyhub.ledger.migrate import alembic_config, current_revision, head_revision, upgrade
from subsidyhub.ledger.models import Base, PriceVersion

from .helpers import T0

# These tests are about the migrations: ledger_db runs them from empty, never copied.
pytestmark = pytest.mark.migrations


def test_migrations_match_models(ledger_db):
    with ledger_db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_file_names_give_alembics_line_of_revisions(ledger_db):
    """``head_revision`` reads file names; Alembic must see the same head and a single line."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [head_revision()]
    for script in scripts.walk_revisions():
        assert script.path.rsplit("/", 1)[-1].startswith(f"{script.revision}_")
    with ledger_db.engine.connect() as connection:
        assert current_revision(connection) == head_revision()


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


def test_0003_moves_each_limit_column_into_limits(database_url):
    """Limits set as columns before 0003 keep their values, by their declared names."""
    from sqlalchemy import text

    from subsidyhub.ledger.db import Database

    db = Database(database_url)
    upgrade(db, revision="0002")
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO projects (id, slug, name, kind, status, subsidy_bp, max_gpus, "
                "member_max_gpus, gpu_ms_per_week, max_session_ms, allowed_profiles, "
                "allowed_gpu_types, overdraft_micro, created_ms) VALUES (1, 'p', 'P', "
                "'research', 'active', 7000, 4, 2, 36000000, NULL, :profiles, NULL, 0, 0)"
            ),
            {"profiles": '["cpu-small"]'},
        )
        connection.execute(
            text(
                "INSERT INTO members (id, project_id, username, role, max_gpus, "
                "gpu_ms_per_week, max_session_ms, created_ms, source) VALUES "
                "(1, 1, 'alice', 'member', 1, NULL, 7200000, 0, 'manual')"
            )
        )
    upgrade(db)
    with db.read() as session:
        project = projects.get_project(session, "p")
        assert project.limits == {
            "project_max_gpus": 4,
            "member_max_gpus": 2,
            "gpu_hours_per_week": 36_000_000,
            "profiles": ["cpu-small"],
        }
        [member] = projects.members_of(session, project)
        assert member.limits == {"member_max_gpus": 1, "max_session_hours": 7_200_000}
    db.dispose()
