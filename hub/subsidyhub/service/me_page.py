"""``GET me`` as the service answers it: encoded once, and kept a moment for fast pollers.

The page itself is read by :func:`subsidyhub.ledger.me.read_page` (two queries in one read
transaction); here it becomes JSON bytes, encoded once, and :class:`MePages` serves the same
bytes again to a caller who asks within a second, unless something was written meanwhile.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, event

from subsidyhub.ledger.db import Database
from subsidyhub.ledger.me import read_page
from subsidyhub.settings import Settings


def encode(page: dict[str, Any]) -> bytes:
    """JSON bytes, as Starlette's ``JSONResponse`` would render them."""
    return json.dumps(
        page, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def render_me(
    db: Database, settings: Settings, username: str, is_admin: bool, now_ms: int
) -> bytes:
    """The ``GET me`` body: one read transaction, two queries, encoded once."""
    # ``db.read()`` is this same transaction on the same engine, plus an ORM session that two
    # Core queries do not need (it would double the cost of opening and closing the read).
    with db.read_engine.begin() as connection:
        page = read_page(connection, settings, username, is_admin, now_ms)
    return encode(page)


class WriteWatch:
    """A counter that moves each time a transaction of this process that wrote has ended.

    It watches the database's write engine: a statement other than a ``SELECT`` marks its
    connection, and when a marked connection goes back to the pool (after its commit or
    rollback) the generation moves. A page read before the move is then out of date. Writes
    by other processes (the CLI) are not seen here; :class:`MePages` bounds those by age.
    """

    _MARK = "subsidyhub_wrote"

    def __init__(self, db: Database) -> None:
        self.generation = 0
        self._lock = threading.Lock()  # checkins happen in worker threads
        self._engine = db.engine
        event.listen(self._engine, "before_cursor_execute", self._on_statement)
        event.listen(self._engine, "checkin", self._on_checkin)

    def _on_statement(
        self, connection: Connection, _cursor: Any, statement: str, *_args: Any
    ) -> None:
        if statement.lstrip()[:6].upper() != "SELECT":
            connection.info[self._MARK] = True

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(self._MARK, False):
            with self._lock:
                self.generation += 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._on_statement)
        event.remove(self._engine, "checkin", self._on_checkin)


@dataclass(frozen=True, slots=True)
class _Page:
    generation: int
    until: float  # time.monotonic() after which it is not served again
    at_ms: int  # the service clock's now that the page describes
    body: bytes


class MePages:
    """``GET me`` bodies of the last ``max_age_s`` per caller, for callers that poll fast.

    Only ``GET me`` uses it: nothing that admits, stops or meters reads a page from here. A
    page is served again only while no write of this process has ended since it was read
    (:class:`WriteWatch`), it is younger than ``max_age_s`` by the wall clock (so a change
    made by another process, such as the CLI, shows within that time) and by the service's
    clock (so a test that moves the clock sees the new instant). Its ``at`` says when it was
    read. ``max_age_s=0`` turns it off.

    In a deployment with many users, each polling every few seconds, few requests find a
    page here; it pays off for a caller who polls more than once a second (several
    JupyterLab windows, a script).
    """

    def __init__(self, db: Database, *, max_age_s: float = 1.0, max_entries: int = 4096) -> None:
        self.max_age_s = max_age_s
        self._max_age_ms = int(max_age_s * 1000)
        self._max_entries = max_entries
        self._pages: dict[tuple[str, bool], _Page] = {}
        self.watch = WriteWatch(db)

    def get(self, username: str, is_admin: bool, now_ms: int) -> bytes | None:
        page = self._pages.get((username, is_admin))
        if (
            page is None
            or page.generation != self.watch.generation
            or not 0 <= now_ms - page.at_ms < self._max_age_ms
            or time.monotonic() >= page.until
        ):
            return None
        return page.body

    def put(self, username: str, is_admin: bool, now_ms: int, generation: int, body: bytes) -> None:
        """Keep ``body``, read at ``now_ms`` after :attr:`generation` was ``generation``."""
        if self.max_age_s <= 0 or generation != self.watch.generation:
            return
        key = (username, is_admin)
        self._pages.pop(key, None)
        # Each page lives between 3/4 of the age and the whole of it, at random: pages read
        # together (after a write, or at a start) then expire apart instead of all being read
        # again in the same millisecond, which would hold up every request behind them.
        until = time.monotonic() + self.max_age_s * (0.75 + random.random() / 4)
        self._pages[key] = _Page(generation, until, now_ms, body)
        if len(self._pages) > self._max_entries:
            del self._pages[next(iter(self._pages))]  # the least recently read

    def close(self) -> None:
        """Stop watching the database; from now on nothing is kept (the app has shut down)."""
        self.max_age_s = 0
        self._max_age_ms = 0
        self._pages.clear()
        self.watch.close()
