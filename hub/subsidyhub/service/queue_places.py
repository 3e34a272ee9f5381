"""The places of a GPU queue, computed at most once a second per type in this process.

Every open spawn page asks for its place each second (that is how it starts the server within
a second of an offer), and a place's position and wait need the whole queue ordered and
walked forward (:func:`subsidyhub.ledger.queue.places`, tens of ms with 1,000 waiting). So the
answer for a type is kept for a second, and only while the queue itself is unchanged (its
:func:`~subsidyhub.ledger.queue.marker`: a join, a leave, an offer or an admission moves it),
so a change is seen at once and a hundred polling pages cost one computation a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from subsidyhub.ledger import queue
from subsidyhub.settings import Settings

TTL_S = 1.0


class QueuePlaces:
    def __init__(self, settings: Settings, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self._kept: dict[str, tuple[float, tuple[int, ...], list[queue.Place]]] = {}
        self._lock = threading.Lock()

    def of_type(self, session: Session, gpu_type: str, now_ms: int) -> list[queue.Place]:
        mark = queue.marker(session, gpu_type)
        with self._lock:
            kept = self._kept.get(gpu_type)
        if kept is not None and kept[1] == mark and self._monotonic() - kept[0] < TTL_S:
            return kept[2]
        fresh = queue.places(session, self.settings, gpu_type, now_ms)
        with self._lock:
            self._kept[gpu_type] = (self._monotonic(), mark, fresh)
        return fresh
