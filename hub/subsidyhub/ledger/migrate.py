"""Schema migrations (Alembic, shipped inside the package) and first-start seeding.

``upgrade`` is what ``subsidyhub db upgrade`` and every component's start run: it brings the
schema to the newest revision and loads the config's price list, so a fresh database is ready
and an old one is migrated, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from subsidyhub.ledger import prices
from subsidyhub.ledger.db import Database, now_ms
from subsidyhub.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
# Serialises concurrent upgrades (several replicas starting at once) on PostgreSQL.
MIGRATE_LOCK_KEY = 0x5B5D_0002


class MigrationFailed(Exception):
    """Alembic refused to migrate, e.g. the database is at a revision this code does not know."""


def alembic_config() -> Config:
    # Alembic is imported only to migrate: it costs half a second that a current database,
    # checked on every CLI command and service start, need not pay.
    from alembic.config import Config

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


def head_revision() -> str:
    """The newest revision, read from the file names (``NNNN_what.py`` with ``revision =
    "NNNN"``, a line of revisions; ``tests/ledger/test_schema.py`` holds Alembic to it).

    Why not Alembic's own script directory: loading it imports every migration and half a
    second of Alembic, which every CLI command and service start would pay on a current
    database.
    """
    return max(
        path.name[:4] for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    )


def current_revision(connection: Connection) -> str | None:
    """The revision stamped in the database; ``None`` where no ledger was ever made."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(db: Database, settings: Settings | None = None, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default; tests stop at older ones) and,
    with ``settings``, load the config's price list. A current database costs one query."""
    with db.engine.connect() as connection:
        target = head_revision() if revision == "head" else revision
        current = current_revision(connection)
        connection.rollback()  # the SQLite pragma below needs no transaction open
        if current != target:
            _migrate(db, connection, revision)
    if settings is not None:
        with db.write() as session:
            prices.sync_from_config(session, settings, now_ms())


def _migrate(db: Database, connection: Connection, revision: str) -> None:
    from alembic import command  # see alembic_config
    from alembic.util.exc import CommandError

    config = alembic_config()
    guard = _foreign_keys_deferred if db.is_sqlite else _advisory_lock
    with guard(connection):
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, revision)
        except CommandError as error:
            raise MigrationFailed(str(error)) from error
        connection.commit()
