"""Spawn hooks: ask the service before a server starts, tell it when one stops.

``pre_spawn`` turns the user's choice (profile, project) into an admission. A refusal is a
``SpawnException`` carrying the service's message, so the spawn page shows "Project demo has
HK$3.20 of subsidy left; …" rather than a bare 403. If the service cannot be reached the spawn
is refused with a message saying so, unless ``fail_open`` is set: then it starts, is counted
in the hub's metrics, and reconciliation admits it later from the server's own start time.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Counter

from subsidyhub.hubplugin.client import ServiceRefused, ServiceUnavailable, SubsidyClient
from subsidyhub.hubplugin.spawn_exception import SpawnException
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


class SubsidyHooks:
    def __init__(self, settings: Settings, client: SubsidyClient) -> None:
        self.settings = settings
        self.client = client

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
        options = spawner.user_options
        profile = self.profile_slug(options)
        reserve = getattr(spawner, "reserve_gpus", None)
        if reserve is not None:
            reserve(profile)
        try:
            admitted = await self.client.admit(
                spawner.user.name, spawner.name, profile, options.get("project")
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
                return
            SPAWN_CHECKS.labels("unavailable").inc()
            self._release(spawner)
            log.error("Subsidy service unreachable for %s: %s", spawner._log_name, error)
            raise SpawnException(
                UNAVAILABLE, reason="service_unavailable", status_code=503
            ) from None
        SPAWN_CHECKS.labels("admitted").inc()
        spawner.user_options = dict(options) | {"profile": profile, "project": admitted["project"]}
        spawner.environment = dict(spawner.environment) | {
            "SUBSIDYHUB_PROJECT": admitted["project"],
            "SUBSIDYHUB_PROFILE": profile,
        }

    @staticmethod
    def _release(spawner: Any) -> None:
        release = getattr(spawner, "release_gpus", None)
        if release is not None:
            release()

    async def post_stop(self, spawner: Any) -> None:
        try:
            await self.client.stop_server(spawner.user.name, spawner.name, "stopped")
        except (ServiceRefused, ServiceUnavailable) as error:
            # Reconciliation closes the session later; the server itself is already gone.
            log.warning(
                "Could not tell the subsidy service that %s stopped: %s", spawner._log_name, error
            )
