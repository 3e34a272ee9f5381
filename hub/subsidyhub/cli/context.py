"""What every command shares: the config in force, the ledger database and the acting person.

One :class:`Invocation` lives on the root context for the length of one command line. It opens
nothing until a command asks, so ``--help`` works even with a broken config, and it opens the
database at most once, bringing it up to date first (see :meth:`Invocation.database`).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import MigrationFailed, current_revision, upgrade
from subsidyhub.settings import DATA_DIR_ENV, Settings, load_settings

ACTOR_ENV = "SUBSIDYHUB_ACTOR"


class CliError(Exception):
    """A failure reported as one ``error:`` line; exit 2 for bad input, 1 for everything else."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def actor() -> str:
    """Who the audit log names: ``$SUBSIDYHUB_ACTOR`` or the OS user, marked as coming from here."""
    name = os.environ.get(ACTOR_ENV, "").strip()
    if not name:
        try:
            name = getpass.getuser()
        except OSError:  # a container user with no passwd entry has only a uid
            name = f"uid-{os.getuid()}"
    return f"cli:{name}"


def display_url(url: str) -> str:
    """The database URL as safe to print: the password, if any, masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable database_url)"


def _reason(error: Exception) -> str:
    """The driver's own first line (e.g. "connection refused") rather than SQLAlchemy's wrapper."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def no_ledger_message(where: str) -> str:
    return (
        f"no SubsidyHub ledger at {where}; run 'subsidyhub up' (or 'subsidyhub db upgrade') "
        f"to create one there, or set {DATA_DIR_ENV} to the data dir that 'subsidyhub up' "
        "printed (or --config to the config that names your database)"
    )


def _require_sqlite_file(url: str) -> None:
    """Refuse before connecting: SQLite would create the missing file (and its folder)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # Database() reports the bad URL
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if not Path(parsed.database).is_file():
        raise CliError(no_ledger_message(str(Path(parsed.database).resolve())))


def _revision(db: Database) -> str | None:
    """The schema revision stamped in the database; ``None`` when no ledger was ever made there."""
    with db.engine.connect() as connection:
        return current_revision(connection)


@dataclass
class Invocation:
    """Lazily loaded settings and database for one command line."""

    config: Path | None
    _settings: Settings | None = field(default=None, init=False)
    _db: Database | None = field(default=None, init=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    @property
    def actor(self) -> str:
        return actor()

    def database(self, *, create: bool = False) -> Database:
        """The ledger database, migrated and with the config's prices loaded.

        Every command runs the same ``upgrade`` as ``subsidyhub db upgrade`` and the service's
        start: it is a no-op on a current database, and a command never runs against a schema
        older than its code. Only ``create=True`` (``db upgrade``; ``up`` creates its own)
        may make a new ledger: an admin command pointed at the wrong place (a second shell
        without ``SUBSIDYHUB_DATA_DIR``) must fail instead of writing to a fresh, empty ledger
        that nothing reads and reporting success.
        """
        if self._db is None:
            url = self.settings.resolved_database_url()
            if not create:
                _require_sqlite_file(url)
            try:
                db = Database(url)
            except SQLAlchemyError as error:
                raise CliError(f"database_url {display_url(url)}: {_reason(error)}") from None
            try:
                if not create and _revision(db) is None:
                    db.dispose()
                    raise CliError(no_ledger_message(display_url(url)))
                upgrade(db, self.settings)
            except (SQLAlchemyError, MigrationFailed) as error:
                db.dispose()
                raise CliError(
                    f"cannot open the database {display_url(url)}: {_reason(error)}"
                ) from None
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None
