"""At login, hand the identity provider's groups to the subsidy service (``sso.groups``).

:class:`SsoGroupSync` is an ``Authenticator.post_auth_hook``. With OAuthenticator's
``manage_groups``, the auth model carries ``groups`` (every group the identity provider
reported); the hook sends them to the service, which brings the user's SSO memberships in line
(:mod:`subsidyhub.ledger.sso`). A login never fails because of SubsidyHub: if the service is
down or refuses, the user logs in with the memberships of their previous login and the hub logs
a warning; the next login syncs again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from inspect import isawaitable
from typing import Any

from subsidyhub.hubplugin.client import ServiceRefused, ServiceUnavailable, SubsidyClient

log = logging.getLogger("subsidyhub.sso")

PostAuthHook = Callable[[Any, Any, dict[str, Any]], Any]


class SsoGroupSync:
    """The post-auth hook; runs a deployment's own hook (``previous``) first."""

    def __init__(self, client: SubsidyClient, previous: PostAuthHook | None = None) -> None:
        self.client = client
        self.previous = previous

    def __deepcopy__(self, memo: dict[int, Any]) -> SsoGroupSync:
        # Traitlets may deep-copy config values; keep one hook and one HTTP connection pool.
        return self

    async def __call__(
        self, authenticator: Any, handler: Any, auth_model: dict[str, Any]
    ) -> dict[str, Any]:
        if self.previous is not None:
            result = self.previous(authenticator, handler, auth_model)
            auth_model = await result if isawaitable(result) else result
        groups = auth_model.get("groups")
        if groups is None:
            # Not a group-managing authenticator (manage_groups off): nothing to map.
            return auth_model
        name = auth_model["name"]
        try:
            synced = await self.client.sync_sso_groups(name, sorted(groups))
        except (ServiceRefused, ServiceUnavailable) as error:
            log.warning(
                "Could not sync %s's SSO groups with the subsidy service (%s); they keep the "
                "memberships of their previous login",
                name,
                error,
            )
            return auth_model
        for change in synced["changes"]:
            log.info(
                "SSO: %s %s in project %s (role %s, was %s)",
                name,
                change["change"],
                change["project"],
                change["role"],
                change["previous_role"],
            )
        return auth_model
