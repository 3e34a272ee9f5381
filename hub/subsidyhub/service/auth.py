"""Who is calling, and what they may do: JupyterHub tokens in, an :class:`Identity` out.

Every request carries a JupyterHub API token (``Authorization: token X`` or ``Bearer X``,
or, from the admin page, a session cookie with a CSRF header: see
:mod:`subsidyhub.service.browser_auth`).
The service asks the hub who owns it (``GET {hub_api_url}/user``) and caches the answer for a
short time, keyed by a SHA-256 of the token, so a JupyterLab status bar polling ``GET me``
costs the hub one call per token per TTL, not one per poll. Tokens are never logged, stored
in clear or echoed in a response.

Permissions, from the guarantees in the architecture:

* a token must be meant for this service: it carries ``access:services!service=subsidy`` (or
  ``access:services``), as JupyterHub's own ``HubAuth.access_scopes`` requires. A user's full
  token, a single-user server's token and the admin page's OAuth token have it (the hub plugin
  grants it on the ``user`` and ``server`` roles, and the hub gives it to a service's OAuth
  tokens); a token minted with other scopes, for another purpose, gets a 403. Only the hub's
  own token and service admins need no access scope;
* users read only their own data;
* project managers (members with role ``manager``) read their project, its members,
  statement and audit trail, and add or remove its members;
* service admins (hub admins using a token with admin power, or holders of the custom scope
  ``custom:subsidy:admin``) may do everything an admin does;
* the hub-facing identity (the service's own token, used by the hub plugin) admits and stops
  sessions; nobody else can.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from subsidyhub.errors import Forbidden, SubsidyError
from subsidyhub.ledger.models import Project
from subsidyhub.ledger.projects import get_project, managed_project
from subsidyhub.names import ADMIN_SCOPE, HUB_ADMIN_POWER_SCOPE, SERVICE_NAME
from subsidyhub.netutil import tls_context
from subsidyhub.service.browser_auth import session_token
from subsidyhub.service.context import Context

log = logging.getLogger(__name__)

# Holds the access scope of every service, the subsidy service's included.
ALL_SERVICES_ACCESS = "access:services"

ADMINS = f"a service admin (a hub admin, or a holder of scope {ADMIN_SCOPE})"


class Unauthenticated(SubsidyError):
    status = 401
    reason = "unauthenticated"


class HubUnavailable(SubsidyError):
    status = 503
    reason = "hub_unavailable"


@dataclass(frozen=True, slots=True)
class Identity:
    """The owner of a token, as the hub describes it."""

    name: str
    kind: str  # "user" or "service"
    hub_admin: bool
    scopes: frozenset[str]
    hub_facing: bool = False

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    @property
    def is_admin(self) -> bool:
        if ADMIN_SCOPE in self.scopes:
            return True
        return self.is_user and self.hub_admin and HUB_ADMIN_POWER_SCOPE in self.scopes

    @property
    def actor(self) -> str:
        """How the audit trail names this identity."""
        return self.name if self.is_user else f"service:{self.name}"

    def is_user_named(self, username: str) -> bool:
        return self.is_user and self.name == username


def token_from_header(value: str | None) -> str:
    """The token in an ``Authorization`` header; raises :class:`Unauthenticated`."""
    if not value:
        raise Unauthenticated(
            "Authentication required: send a JupyterHub API token in the Authorization "
            "header, as 'Authorization: token <token>'."
        )
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() not in ("token", "bearer") or not token.strip():
        raise Unauthenticated(
            "The Authorization header must read 'token <token>' or 'Bearer <token>' "
            "with a JupyterHub API token."
        )
    return token.strip()


class HubAuthenticator:
    """Resolves tokens through the hub's REST API, with a bounded TTL cache."""

    def __init__(
        self,
        hub_api_url: str,
        *,
        service_token: str | None,
        service_name: str = SERVICE_NAME,
        ttl_seconds: float = 30.0,
        rejected_ttl_seconds: float = 5.0,
        max_entries: int = 10_000,
        timeout_seconds: float = 10.0,
        on_hub_check: Callable[[str], None] | None = None,
    ) -> None:
        self.hub_api_url = hub_api_url.rstrip("/")
        self.service_name = service_name
        self.access_scope = f"{ALL_SERVICES_ACCESS}!service={service_name}"
        self._service_token = service_token
        self._ttl = ttl_seconds
        self._rejected_ttl = rejected_ttl_seconds
        self._max_entries = max_entries
        self._timeout = timeout_seconds
        self._on_hub_check = on_hub_check
        # sha256(token) -> (expires at, monotonic; identity or None for a rejected token)
        self._cache: OrderedDict[bytes, tuple[float, Identity | None]] = OrderedDict()
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # Created on first use so it binds to the event loop that serves requests.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, verify=tls_context())
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _is_service_token(self, token: str) -> bool:
        return self._service_token is not None and hmac.compare_digest(
            token.encode(), self._service_token.encode()
        )

    async def identify(self, token: str) -> Identity:
        """The token's owner; raises :class:`Unauthenticated` or :class:`HubUnavailable`."""
        if self._is_service_token(token):
            return Identity(self.service_name, "service", False, frozenset(), hub_facing=True)
        key = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            identity = cached[1]
        else:
            identity = await self._ask_hub(token)
            ttl = self._ttl if identity is not None else self._rejected_ttl
            self._remember(key, (now + ttl, identity))
        if identity is None:
            raise Unauthenticated(
                "JupyterHub did not accept this token (expired, revoked or mistyped); "
                "create a new one on the hub's Token page."
            )
        self._require_access(identity)
        return identity

    def _require_access(self, identity: Identity) -> None:
        """A 403 unless the token carries this service's access scope (see the module doc)."""
        if identity.hub_facing or identity.is_admin:
            return
        if self.access_scope in identity.scopes or ALL_SERVICES_ACCESS in identity.scopes:
            return
        raise Forbidden(
            f"This token of {identity.actor} lacks the scope {self.access_scope}, which every "
            f"token used with the {self.service_name} service needs. Create a token on the "
            "hub's Token page with no scopes chosen (it then has all of yours) or with that "
            "scope; in a notebook, the server's own JUPYTERHUB_API_TOKEN has it."
        )

    def _remember(self, key: bytes, entry: tuple[float, Identity | None]) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)

    async def _ask_hub(self, token: str) -> Identity | None:
        url = f"{self.hub_api_url}/user"
        try:
            response = await self._http().get(url, headers={"Authorization": f"token {token}"})
        except httpx.HTTPError as error:
            self._count("unreachable")
            log.warning("token check: hub at %s unreachable: %s", url, type(error).__name__)
            raise HubUnavailable(
                f"The service could not reach JupyterHub at {self.hub_api_url} to check the "
                "token; try again in a moment, and tell the centre's admins if it persists."
            ) from None
        if response.status_code in (401, 403):
            self._count("rejected")
            return None
        if response.status_code != 200:
            self._count("error")
            log.warning("token check: hub answered %s", response.status_code)
            raise HubUnavailable(
                f"JupyterHub answered {response.status_code} when asked to check the token; "
                "try again in a moment."
            )
        self._count("accepted")
        return identity_from_model(response.json(), self.service_name)

    def _count(self, result: str) -> None:
        if self._on_hub_check is not None:
            self._on_hub_check(result)


def identity_from_model(model: dict[str, Any], service_name: str) -> Identity:
    """An :class:`Identity` from the hub's ``GET /user`` model of a user or a service."""
    kind = str(model.get("kind", "user"))
    name = str(model["name"])
    return Identity(
        name=name,
        kind=kind,
        hub_admin=bool(model.get("admin")),
        scopes=frozenset(model.get("scopes") or ()),
        hub_facing=kind == "service" and name == service_name,
    )


async def authenticate(request: Request, context: Context) -> Identity:
    """FastAPI dependency: the caller's identity, or a 401.

    An ``Authorization`` header wins; without one, the admin page's session cookie counts,
    with its CSRF header (see :mod:`subsidyhub.service.browser_auth`).
    """
    header = request.headers.get("authorization")
    token = session_token(request) if header is None else None
    if token is None:
        token = token_from_header(header)
    return await context.authenticator.identify(token)


CurrentIdentity = Annotated[Identity, Depends(authenticate)]


def require_admin(identity: Identity, what: str) -> None:
    if not identity.is_admin:
        raise Forbidden(f"{identity.actor} may not {what}: this needs {ADMINS}.")


def require_hub_facing(identity: Identity, what: str) -> None:
    if not identity.hub_facing:
        raise Forbidden(
            f"{identity.actor} may not {what}: only JupyterHub itself (the subsidy service's "
            "own token) admits and stops sessions."
        )


def require_user_or_admin(identity: Identity, username: str, what: str) -> None:
    """The user themself, a service admin, or the hub."""
    if identity.is_user_named(username) or identity.is_admin or identity.hub_facing:
        return
    raise Forbidden(f"{identity.actor} may not {what} of {username}: only {username} or {ADMINS}.")


def project_for(session: Session, identity: Identity, slug: str, what: str) -> Project:
    """The project, if the caller administers the service or manages this project.

    A non-admin gets the same 403 whether or not the project exists, so project names do not
    leak to people outside them.
    """
    if identity.is_admin:
        return get_project(session, slug)
    if identity.is_user:
        managed = managed_project(session, slug, identity.name)
        if managed is not None:
            return managed
    raise Forbidden(
        f"{identity.actor} may not {what} of project {slug}: this needs a manager of "
        f"{slug} or {ADMINS}."
    )
