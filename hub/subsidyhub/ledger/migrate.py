"""Schema migrations (Alembic, shipped inside the package) and first-start seeding.

``upgrade`` is what ``subsidyhub db upgrade`` and every component's start run: it brings the
schema to the newest revision and loads the config's price list, so a fresh database is ready
and an old one is migrated, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from subsidyhub.ledger import prices
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")
# Serialises concurrent upgrades (several replicas starting at once) on PostgreSQL.
MIGRATE_LOCK_KEY = 0x5B5D_0002


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(db: Database, settings: Settings | None = None) -> None:
    config = alembic_config()
    with db.engine.connect() as connection:
        if not db.is_sqlite:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if not db.is_sqlite:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK_KEY})
                connection.commit()
    if settings is not None:
        with db.write() as session:
            prices.sync_from_config(session, settings, now_ms())
