"""The newest stop each user did not ask for, for the hub's home and spawn pages.

JupyterHub renders its pages synchronously from ``template_vars``, so the pages cannot ask
the subsidy service while they render. :class:`StopNotes` keeps each user's answer of
``GET users/{name}/stops`` in memory: the ``post_stop`` hook fetches it right after a server
stops (so the page the person opens next says why), a start forgets it (a new server makes
the old stop history), and a page finding it older than ``max_age_s`` shows it and asks again
in the background. After a hub restart the first page a user opens asks; the next one shows.
If the service does not answer, the pages show nothing more than JupyterHub's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from subsidyhub.hubplugin.client import ServiceRefused, ServiceUnavailable, SubsidyClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Note:
    stop: dict[str, Any] | None
    read_at: float


def newest_to_explain(stops: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest stop with no start since that its owner did not ask for (see ``RecentStop``)."""
    for stop in stops:
        if not stop.get("current"):
            return None  # a server was started after it: the person has moved on
        if not stop.get("own"):
            return stop
    return None


class StopNotes:
    """Called by a page with its user, as a JupyterHub template variable: the stop to show."""

    def __init__(
        self,
        client: SubsidyClient,
        *,
        max_age_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.max_age_s = max_age_s
        self._clock = clock
        self._notes: dict[str, _Note] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._after_stops: set[asyncio.Task[None]] = set()

    def __deepcopy__(self, memo: dict[int, Any]) -> StopNotes:
        return self  # one shared cache, however often traitlets copies the config

    def __call__(self, user: Any) -> dict[str, Any] | None:
        if user is None:
            return None
        note = self._notes.get(user.name)
        if note is None or self._clock() - note.read_at > self.max_age_s:
            self._refresh_soon(user.name)
        return note.stop if note is not None else None

    def forget(self, username: str) -> None:
        """A server is starting: an earlier stop is no news any more."""
        self._notes[username] = _Note(None, self._clock())

    def after_stop(self, username: str) -> None:
        """A server of ``username`` stopped and the notice is recorded or queued: ask now, in
        the background (a stop never waits for it), so the next page can say why."""
        task = asyncio.get_running_loop().create_task(self.refresh(username))
        self._after_stops.add(task)
        task.add_done_callback(self._after_stops.discard)

    async def refresh(self, username: str) -> None:
        """Ask the service now; an unanswered question keeps what was known."""
        try:
            stops = await self.client.recent_stops(username)
        except (ServiceUnavailable, ServiceRefused) as error:
            log.warning("Could not read why %s's servers stopped: %s", username, error)
            return
        self._notes[username] = _Note(newest_to_explain(stops), self._clock())

    def _refresh_soon(self, username: str) -> None:
        if username in self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # rendered outside the hub's loop (a test of the template): nothing to ask
        self._pending[username] = loop.create_task(self._refresh_pending(username))

    async def _refresh_pending(self, username: str) -> None:
        try:
            await self.refresh(username)
        finally:
            del self._pending[username]
