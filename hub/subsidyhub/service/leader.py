"""One enforcer among the service processes sharing a ledger: a lock only the leader holds.

Every process answers requests; only the holder of the lock meters, stops and reconciles.

* PostgreSQL: a session advisory lock on a dedicated connection, released when the holder's
  process or connection dies.
* SQLite file: an exclusive ``flock`` on a lock file beside the database
  (``subsidyhub.sqlite.leader``, which names the pid of the last leader), held while the process lives
  and released by the kernel when it dies. Two services on one embedded ledger happen: an
  orphaned managed service next to the restarted hub's, or one started by hand.
* SQLite in memory: one process by construction, so it always leads.

The others try again at their next round (every second), so one takes over within a second or
two of the leader's death. Correctness does not depend on the lock (ticks are serialised and
idempotent, stops are idempotent); it keeps the work from being done twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from sqlalchemy import Connection, text

from subsidyhub.ledger.db import Database

log = logging.getLogger("subsidyhub.leader")

LEADER_LOCK_KEY = 0x5B5D_0003
LOCK_FILE_SUFFIX = ".leader"


def lock_file_path(db: Database) -> Path | None:
    """The SQLite ledger's leader lock file; None for PostgreSQL and in-memory SQLite."""
    if not db.is_sqlite:
        return None
    url = db.engine.url
    database = url.database
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    return Path(database).with_name(Path(database).name + LOCK_FILE_SUFFIX)


class Leadership:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._connection: Connection | None = None
        self._lock_path = lock_file_path(db)
        self._lock_fd: int | None = None

    def holds(self) -> bool:
        """Whether this process leads now; tries to take the lead if nobody holds it."""
        if self.db.is_sqlite:
            return self._lock_path is None or self._holds_file_lock(self._lock_path)
        return self._holds_advisory_lock()

    def _holds_file_lock(self, path: Path) -> bool:
        if self._lock_fd is not None:
            return True
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            log.warning("Cannot open the leader lock file %s: %s", path, error)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another process (BlockingIOError), or no locks here
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        log.info("This process now leads metering and enforcement (lock %s)", path)
        return True

    def _holds_advisory_lock(self) -> bool:
        try:
            if self._connection is None:
                self._connection = self.db.engine.connect()
                taken = self._connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}
                ).scalar_one()
                self._connection.commit()
                if not taken:
                    self.release()
                    return False
                log.info("This replica now leads metering and enforcement")
                return True
            self._connection.execute(text("SELECT 1"))  # still connected, so still holding
            self._connection.commit()
            return True
        except Exception:
            log.warning("Lost the leader lock's connection; will try to take the lead again")
            self.release()
            return False

    def release(self) -> None:
        """Let go: the lock file is closed (unlocking it); the PostgreSQL connection is
        discarded, not pooled, since its session holds the lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except Exception:
                log.debug("Closing the leader connection failed", exc_info=True)
            self._connection = None
