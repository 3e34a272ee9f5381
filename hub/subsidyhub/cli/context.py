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

from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.settings import Settings, load_settings

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

    def database(self) -> Database:
        """The ledger database, migrated and with the config's prices loaded.

        Every command runs the same ``upgrade`` as ``subsidyhub db upgrade`` and the service's
        start: it is a no-op on a current database, and it means a fresh database works at once
        and a command never runs against a schema older than its code.
        """
        if self._db is None:
            url = self.settings.resolved_database_url()
            try:
                db = Database(url)
            except SQLAlchemyError as error:
                raise CliError(f"database_url {display_url(url)}: {_reason(error)}") from None
            try:
                upgrade(db, self.settings)
            except (SQLAlchemyError, CommandError) as error:
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
