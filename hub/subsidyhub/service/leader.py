"""One enforcer among several service replicas: a PostgreSQL session advisory lock.

Every replica answers requests; only the holder of the lock meters, stops and reconciles.
The lock lives on a dedicated connection, so it is released when the holder's process or
connection dies and another replica takes over at its next try. Correctness does not depend
on it (ticks are serialised and idempotent, stops are idempotent); it avoids doing the work
twice. SQLite has one process by construction: there the lock is always held.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, text

from subsidyhub.ledger.db import Database

log = logging.getLogger("subsidyhub.leader")

LEADER_LOCK_KEY = 0x5B5D_0003


class Leadership:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._connection: Connection | None = None

    def holds(self) -> bool:
        """Whether this process leads now; tries to take the lead if nobody holds it."""
        if self.db.is_sqlite:
            return True
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
        """Let go: the connection is discarded, not pooled, since its session holds the lock."""
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except Exception:
                log.debug("Closing the leader connection failed", exc_info=True)
            self._connection = None
