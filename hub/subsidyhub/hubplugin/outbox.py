"""Stop notices the service has not received yet, kept on disk until it has.

When a server stops, ``post_stop`` notes the instant the hub saw and tells the service, which
records that stop. If the service is down or frozen then, the notice must not be lost: the
service would place the stop at an estimate and could charge for time the server never ran.
So every notice is first written to the outbox, one small JSON file per notice in a
directory next to the hub's database (``hub.outbox_dir``), atomically (temporary file,
fsync, rename): a crash or a hub restart leaves the whole notice or none of it. A file is
removed once the service has the stop.

A courier task in the hub's event loop delivers what is pending, oldest stop first, again
and again with back-off (1 s doubling to 10 s) while the service does not answer. It starts
when the hub loads its config (JupyterHub does so inside its running loop), so notices kept
across a restart are delivered at start. The service records a reported stop once, so a
notice delivered twice (its answer was lost) changes nothing. A notice about a server the
service never admitted (``fail_open``) is dropped; one it rejects as invalid (a stop before
the session started) is kept as ``*.rejected`` for the admins, and never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from subsidyhub.hubplugin.client import ServiceRefused, ServiceUnavailable, SubsidyClient
from subsidyhub.timeutil import iso

log = logging.getLogger("subsidyhub.outbox")

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 10.0
# The service's answers that end a notice's delivery (any other: retry later).
NOT_ADMITTED, REJECTED = 404, 400


@dataclass(frozen=True, slots=True)
class StopNotice:
    """One server stop as the hub saw it; the JSON of an outbox file."""

    user: str
    server_name: str
    stopped_ms: int
    reason: str

    @property
    def label(self) -> str:
        return f"{self.user}/{self.server_name}"


class StopOutbox:
    """The outbox directory and the courier that empties it."""

    def __init__(self, directory: Path, client: SubsidyClient) -> None:
        self.directory = directory
        self.client = client
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the files ----------------------------------------------------------------------

    def keep(self, notice: StopNotice) -> Path:
        """Write ``notice`` durably; its path sorts by stop time."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{notice.stopped_ms:013d}-{uuid.uuid4().hex}.json"
        path = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        with temporary.open("w", encoding="utf-8") as file:
            json.dump(asdict(notice), file)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # the rename itself survives a crash
        finally:
            os.close(descriptor)
        return path

    def pending(self) -> list[Path]:
        """Notices not delivered yet, oldest stop first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("[0-9]*.json"))

    def read(self, path: Path) -> StopNotice | None:
        """The notice in ``path``; ``None`` when it is gone (delivered meanwhile) or set aside
        as unreadable."""
        try:
            return StopNotice(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:
            self.set_aside(path, f"unreadable: {error}")
            return None

    def done(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def set_aside(self, path: Path, why: str) -> None:
        log.error("Stop notice %s rejected, kept as %s.rejected: %s", path.name, path.name, why)
        with contextlib.suppress(FileNotFoundError):
            path.replace(path.with_name(path.name + ".rejected"))

    # -- delivery -----------------------------------------------------------------------

    async def deliver(self, path: Path) -> bool:
        """Deliver one notice; True once it needs no more attempts (recorded or rejected)."""
        notice = self.read(path)
        if notice is None:
            return True
        try:
            await self.client.stop_server(
                notice.user, notice.server_name, notice.reason, notice.stopped_ms
            )
        except ServiceUnavailable as error:
            log.warning(
                "Stop of %s at %s not delivered yet: %s",
                notice.label,
                iso(notice.stopped_ms, exact=True),
                error,
            )
            return False
        except ServiceRefused as refusal:
            if refusal.status == NOT_ADMITTED:
                log.info("Stop of %s not recorded: %s", notice.label, refusal.message)
            elif refusal.status == REJECTED:
                self.set_aside(path, refusal.message)
                return True
            else:
                log.warning("Stop of %s not delivered yet: %s", notice.label, refusal.message)
                return False
        self.done(path)
        return True

    async def deliver_pending(self) -> bool:
        """Try every pending notice once; True when none is left to retry."""
        results = [await self.deliver(path) for path in self.pending()]
        return all(results)

    async def send(self, notice: StopNotice) -> None:
        """Keep ``notice``, then deliver it now; the courier retries if the service is away."""
        try:
            path = self.keep(notice)
        except OSError as error:
            log.error("Cannot keep the stop of %s in %s: %s", notice.label, self.directory, error)
            with contextlib.suppress(ServiceUnavailable, ServiceRefused):
                await self.client.stop_server(
                    notice.user, notice.server_name, notice.reason, notice.stopped_ms
                )
            return
        if not await self.deliver(path):
            self.start()
            self._wake.set()

    # -- the courier --------------------------------------------------------------------

    def start(self) -> None:
        """Run the courier in the running event loop, if there is one and it does not run yet.

        Called when the hub loads its config (inside its loop) and at every stop, so a config
        loaded outside a loop (tests, tools) starts it with the first stop.
        """
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._courier(), name="subsidyhub-stop-outbox")

    async def _courier(self) -> None:
        delay = FIRST_RETRY_S
        while True:
            self._wake.clear()
            try:
                done = await self.deliver_pending()
            except Exception:
                log.exception("Delivering stop notices failed; retrying")
                done = False
            if done:
                delay = FIRST_RETRY_S
                await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            delay = min(delay * 2, MAX_RETRY_S)
