"""Spawn hooks: ask the service before a server starts, tell it when one stops.

``pre_spawn`` turns the user's choice (profile, project) into an admission. A refusal is a
``SpawnException`` carrying the service's message, so the spawn page shows "Project demo has
HK$3.20 of subsidy left; …" rather than a bare 403. If the service cannot be reached (or
does not answer within ``hub.service_timeout_seconds``, the admission's deadline) the spawn
is refused with a message saying so, unless ``fail_open`` is set: then it starts, is counted
in the hub's metrics, and reconciliation admits it later from the server's own start time.

When the host's GPU pool has too few free GPUs, the policy is asked first (a dry run): a
project cap, quota or balance that refuses anyway is the reason shown, since it is the one
the person can act on; the pool's message only when the policy would admit.

``post_stop`` hands the stop, with the instant the hub saw it, to the stop outbox
(:mod:`subsidyhub.hubplugin.outbox`), which delivers it now or, if the service is away, later.
JupyterHub also runs it after a spawn that failed; when ``pre_spawn`` let nothing start there
is nothing to report, and a notice would only risk being taken for an older session's stop.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter

from subsidyhub.hubplugin.client import ServiceRefused, ServiceUnavailable, SubsidyClient
from subsidyhub.hubplugin.outbox import StopNotice, StopOutbox
from subsidyhub.hubplugin.spawn_exception import SpawnException
from subsidyhub.hubplugin.stop_notes import StopNotes
from subsidyhub.settings import Settings

log = logging.getLogger("subsidyhub.hooks")

SPAWN_CHECKS = Counter(
    "subsidyhub_hub_spawn_checks",
    "Admission checks made by the hub, by result (admitted, refused, unavailable, fail_open)",
    ["result"],
)

UNAVAILABLE = (
    "The subsidy service is not reachable, so your server cannot be charged and was not "
    "started. Running servers are not affected. Try again in a few minutes; if it persists, "
    "tell the centre's admins."
)


# The reason the service records for a stop the hub reports.
HUB_STOP_REASON = "stopped"
# Set on a spawner by ``pre_spawn``: whether it let the server start (admitted or fail_open).
LET_THROUGH = "_subsidyhub_let_through"


class SubsidyHooks:
    def __init__(self, settings: Settings, client: SubsidyClient, outbox: StopOutbox) -> None:
        self.settings = settings
        self.client = client
        self.outbox = outbox
        # Why servers stopped, for the hub's pages (set by ``configure_hub``).
        self.stop_notes: StopNotes | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> SubsidyHooks:
        # Traitlets deep-copies config values into every new spawner; the hooks (and their
        # HTTP client's connection pool) must stay one shared object.
        return self

    def profile_slug(self, options: dict[str, Any]) -> str:
        slugs = [p.slug for p in self.settings.profiles]
        wanted = options.get("profile") or (slugs[0] if slugs else "")
        if wanted not in slugs:
            raise SpawnException(
                f"No such profile: {wanted}. Options include: {', '.join(slugs)}",
                reason="unknown_profile",
                status_code=400,
            )
        return str(wanted)

    def apply_user_options(self, spawner: Any, options: dict[str, Any]) -> None:
        """JupyterHub's user-options hook: refuse an unknown profile before anything starts."""
        self.profile_slug(options)
        unknown = sorted(set(options) - {"profile", "project"})
        if unknown:
            raise SpawnException(
                f"Unknown option {', '.join(unknown)}; a server takes 'profile' and 'project'.",
                reason="unknown_option",
                status_code=400,
            )

    async def pre_spawn(self, spawner: Any) -> None:
        setattr(spawner, LET_THROUGH, False)
        options = spawner.user_options
        profile = self.profile_slug(options)
        reserve = getattr(spawner, "reserve_gpus", None)
        if reserve is not None:
            try:
                reserve(profile)
            except SpawnException:
                await self._refuse_if_policy_does(spawner, profile, options.get("project"))
                raise
        try:
            admitted = await self.client.admit(
                spawner.user.name,
                spawner.name,
                profile,
                options.get("project"),
                gpu_devices=list(getattr(spawner, "assigned_gpus", None) or []),
                pod=getattr(spawner, "pod_name", None),
            )
        except ServiceRefused as refusal:
            SPAWN_CHECKS.labels("refused").inc()
            self._release(spawner)
            raise SpawnException(
                refusal.message, reason=refusal.reason, status_code=refusal.status
            ) from None
        except ServiceUnavailable as error:
            if self.settings.fail_open:
                SPAWN_CHECKS.labels("fail_open").inc()
                log.warning(
                    "Subsidy service unreachable (%s); starting %s anyway (fail_open)",
                    error,
                    spawner._log_name,
                )
                setattr(spawner, LET_THROUGH, True)
                return
            SPAWN_CHECKS.labels("unavailable").inc()
            self._release(spawner)
            log.error("Subsidy service unreachable for %s: %s", spawner._log_name, error)
            raise SpawnException(
                UNAVAILABLE, reason="service_unavailable", status_code=503
            ) from None
        SPAWN_CHECKS.labels("admitted").inc()
        setattr(spawner, LET_THROUGH, True)
        if self.stop_notes is not None:
            self.stop_notes.forget(spawner.user.name)  # a new server: the last stop is history
        spawner.user_options = dict(options) | {"profile": profile, "project": admitted["project"]}
        spawner.environment = dict(spawner.environment) | {
            "SUBSIDYHUB_PROJECT": admitted["project"],
            "SUBSIDYHUB_PROFILE": profile,
        }

    async def _refuse_if_policy_does(self, spawner: Any, profile: str, project: str | None) -> None:
        """Raise the policy's refusal of this spawn, if it has one (a dry run, nothing written)."""
        try:
            await self.client.check_admission(spawner.user.name, spawner.name, profile, project)
        except ServiceRefused as refusal:
            SPAWN_CHECKS.labels("refused").inc()
            raise SpawnException(
                refusal.message, reason=refusal.reason, status_code=refusal.status
            ) from None
        except ServiceUnavailable as error:
            log.warning(
                "No dry run for %s (%s); the pool's refusal stands", spawner._log_name, error
            )

    @staticmethod
    def _release(spawner: Any) -> None:
        release = getattr(spawner, "release_gpus", None)
        if release is not None:
            release()

    async def post_stop(self, spawner: Any) -> None:
        # A spawner restored after a hub restart never passed pre_spawn here: its server ran.
        if not getattr(spawner, LET_THROUGH, True):
            return
        stopped_ms = time.time_ns() // 1_000_000  # the server has just stopped
        await self.outbox.send(
            StopNotice(spawner.user.name, spawner.name, stopped_ms, HUB_STOP_REASON)
        )
        if self.stop_notes is not None:
            # The stop is recorded (or queued): read why, so the next page can say it.
            self.stop_notes.after_stop(spawner.user.name)
