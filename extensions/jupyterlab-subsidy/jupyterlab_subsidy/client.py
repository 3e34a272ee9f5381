"""The server extension's client of the subsidy service: one request serves every open tab.

Each JupyterLab tab polls the server extension; this client answers them all from one cached
answer per path for ``cache_seconds`` and coalesces concurrent misses into a single request,
so a user with ten tabs costs the service one ``GET me`` per interval. Errors are cached the
same way (a service that is down is not hammered) and always come back as the service's own
``{"status", "message"}``, or one written here that says what failed and that running servers
are unaffected.

Requests that change something (:meth:`ServiceClient.post`, e.g. Keep it) are never cached nor
coalesced, and each drops the cached answers it makes stale (``me`` by default), so the next
poll reads what the change did rather than a warning it has just answered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyterlab_subsidy.location import NotConfigured, ServiceLocation

UNREACHABLE = (
    "The subsidy service is not reachable ({reason}), so balances cannot be shown right now. "
    "Running servers are not affected."
)


@dataclass(frozen=True)
class Answer:
    """A service answer: HTTP status and JSON body (``{"status", "message"}`` on errors)."""

    status: int
    body: dict[str, Any]
    at: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def error_answer(status: int, message: str, at: float) -> Answer:
    return Answer(status, {"status": status, "message": message}, at)


def answer_from_error(error: HTTPClientError, at: float) -> Answer:
    """The service's own error message when it sent one, else one naming the status."""
    status = error.code
    if status == 599 or error.response is None:
        return error_answer(503, UNREACHABLE.format(reason=str(error)), at)
    try:
        body = json.loads(error.response.body or b"{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    if not message:
        message = f"The subsidy service answered HTTP {status} {error.response.reason}."
    return error_answer(status, str(message), at)


class ServiceClient:
    """Cached, coalesced GETs of the service's ``api/v1/`` paths, and uncached POSTs."""

    def __init__(
        self,
        locate: Callable[[], ServiceLocation],
        *,
        cache_seconds: float = 3.0,
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.locate = locate
        self.cache_seconds = cache_seconds
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self.requests_made = 0
        self._cache: dict[str, Answer] = {}
        self._inflight: dict[str, asyncio.Future[Answer]] = {}
        # Paths whose in-flight GET was sent before a POST changed them: not cached.
        self._outdated: set[str] = set()

    async def get(self, path: str, *, max_age: float | None = None) -> Answer:
        """The answer for ``api/v1/PATH``, at most ``max_age`` seconds old (default the cache's)."""
        age_limit = self.cache_seconds if max_age is None else max_age
        cached = self._cache.get(path)
        if cached is not None and self.clock() - cached.at < age_limit:
            return cached
        pending = self._inflight.get(path)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[path] = future
        try:
            answer = await self._fetch(path)
            if path not in self._outdated:
                self._cache[path] = answer
            future.set_result(answer)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here so an unawaited future does not warn
            raise
        finally:
            del self._inflight[path]
            self._outdated.discard(path)
        return answer

    async def post(
        self, path: str, body: dict[str, Any], *, invalidates: tuple[str, ...] = ("me",)
    ) -> Answer:
        """POST ``body`` as JSON to ``api/v1/PATH``: never cached nor coalesced (each press is
        its own request). The cached answers of ``invalidates`` are dropped once it is sent,
        whatever it answers, so the next read sees its effect."""
        try:
            return await self._fetch(path, method="POST", body=body)
        finally:
            for stale in invalidates:
                self._cache.pop(stale, None)
                if stale in self._inflight:
                    self._outdated.add(stale)

    async def _fetch(
        self, path: str, *, method: str = "GET", body: dict[str, Any] | None = None
    ) -> Answer:
        try:
            location = self.locate()
        except NotConfigured as problem:
            return error_answer(503, str(problem), self.clock())
        headers = {"Authorization": f"token {location.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = HTTPRequest(
            location.api(path),
            method=method,
            headers=headers,
            body=None if body is None else json.dumps(body),
            request_timeout=self.timeout_seconds,
            connect_timeout=self.timeout_seconds,
        )
        self.requests_made += 1
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as error:
            return answer_from_error(error, self.clock())
        except OSError as error:
            return error_answer(503, UNREACHABLE.format(reason=str(error)), self.clock())
        try:
            body = json.loads(response.body)
        except ValueError:
            return error_answer(
                502, "The subsidy service sent an answer that is not JSON.", self.clock()
            )
        return Answer(response.code, body, self.clock())
