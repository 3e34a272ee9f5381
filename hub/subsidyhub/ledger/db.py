"""Database engines and transactions for SQLite (embedded) and PostgreSQL (production).

Writers that decide on money (admission, metering, stop, admin changes) go through
:meth:`Database.write`, which serialises them: ``BEGIN IMMEDIATE`` on SQLite (one writer,
taken before the first read, so the facts read are the facts written against) and ordinary
transactions on PostgreSQL, where the domain code takes row locks (``FOR UPDATE``) on the
project first. Readers use :meth:`Database.read`, which never blocks a writer (WAL on SQLite,
MVCC on PostgreSQL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Engines plus the two kinds of transaction the ledger uses."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # SQLite has one writer; threads of this process queue on a lock (woken at once)
        # instead of polling the database's busy handler, which sleeps in steps of ms.
        self._writer_lock: threading.Lock | None = threading.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            self.engine = _sqlite_engine(self.url, immediate=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self.read_engine = self.engine
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)

    def _serialised(self) -> AbstractContextManager[Any]:
        return self._writer_lock if self._writer_lock is not None else nullcontext()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A serialised read-write transaction; commits on success, rolls back on error."""
        with self._serialised(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def trial(self) -> Iterator[Session]:
        """A serialised write transaction that is always rolled back: what a write would do
        (the same locks, rules and answers), leaving nothing written."""
        with self._serialised(), self._write() as session, session.begin() as transaction:
            try:
                yield session
            finally:
                transaction.rollback()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A snapshot for reading; never blocks writers."""
        with self._read() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
