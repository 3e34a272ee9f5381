"""Hub-facing: sync a user's project memberships from their identity-provider groups.

The hub plugin calls this at every login when the authenticator manages groups
(OAuthenticator's ``manage_groups``). Only the hub may: the groups come from the identity
provider through the hub, and a user who could send their own would pick their projects.
The mapping and the rules live in :mod:`subsidyhub.ledger.sso`; this route parses, authorises
and runs it in one write transaction.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from subsidyhub import shapes
from subsidyhub.errors import Conflict, Forbidden
from subsidyhub.ledger.sso import sync_memberships
from subsidyhub.service.auth import CurrentIdentity
from subsidyhub.service.context import Context
from subsidyhub.service.schemas import SsoGroupsPut, UsernameParam
from subsidyhub.shapes import describe_sync

router = APIRouter(tags=["sso"])


@router.put(
    "/users/{username}/sso-groups",
    summary="Sync a user's SSO memberships from their groups (the hub only, at login)",
    response_model=shapes.SsoSync,
    response_model_exclude_unset=True,
)
def put_sso_groups(
    username: UsernameParam, body: SsoGroupsPut, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    if not identity.hub_facing:
        raise Forbidden(
            f"{identity.actor} may not sync SSO group memberships: only JupyterHub itself (the "
            "subsidy service's own token) does, at login. To change a membership, use PUT "
            "api/v1/projects/{slug}/members/{username} as an admin or the project's manager."
        )
    sso = context.settings.sso
    if not sso.groups:
        raise Conflict(
            "sso.groups is empty in the service's config, so no group maps to a project; add "
            "mappings (see docs/authentication.md) and restart the service."
        )
    with context.db.write() as session:
        result = sync_memberships(session, sso, username, body.groups, at_ms=context.clock())
    return describe_sync(result)
