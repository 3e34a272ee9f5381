"""Schema migrations (Alembic, shipped inside the package) and first-start seeding.

``upgrade`` is what ``subsidyhub db upgrade`` and every component's start run: it brings the
schema to the newest revision and loads the config's price list, so a fresh database is ready
and an old one is migrated, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

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


@contextmanager
def _foreign_keys_deferred(connection: Connection) -> Iterator[None]:
    """SQLite: foreign keys off while Alembic runs, checked and enforced again after.

    Batch migrations rebuild a table (copy, drop, rename); with foreign keys enforced SQLite
    refuses to drop a table others refer to. The pragma only works outside a transaction, so
    it is set on the driver's connection before Alembic begins one.
    """
    raw = connection.connection.dbapi_connection
    if raw is None:
        raise RuntimeError("the SQLite connection to migrate is closed")
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        raw.execute("PRAGMA foreign_keys=ON")
        if broken:
            raise RuntimeError(f"the migration left broken foreign keys: {broken[:5]}")


@contextmanager
def _advisory_lock(connection: Connection) -> Iterator[None]:
    """PostgreSQL: one upgrade at a time when several replicas start together."""
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK_KEY})
        connection.commit()


def upgrade(db: Database, settings: Settings | None = None, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default; tests stop at older ones) and,
    with ``settings``, load the config's price list."""
    config = alembic_config()
    with db.engine.connect() as connection:
        guard = _foreign_keys_deferred if db.is_sqlite else _advisory_lock
        with guard(connection):
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    if settings is not None:
        with db.write() as session:
            prices.sync_from_config(session, settings, now_ms())
