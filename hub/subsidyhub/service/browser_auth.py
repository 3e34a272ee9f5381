"""Signing in to the service's own pages with the hub's OAuth, and cookies instead of headers.

The admin page is a browser page, so it cannot send ``Authorization`` headers on its first
request. It signs in the way JupyterHub's own services do: no session cookie → redirect to
the hub's ``/hub/api/oauth2/authorize`` (the hub asks nobody to confirm: the service is
``oauth_no_confirm``) → ``{prefix}oauth_callback`` checks the ``state`` against a short-lived
cookie, exchanges the code for a token at ``{hub_api_url}/oauth2/token`` and keeps the token.

The token is kept in the browser, in an HttpOnly cookie scoped to the service's prefix, rather
than in a server-side session: the service may run as several replicas behind the proxy, and
a cookie needs no shared session store. The token is the hub's OAuth token for this service,
so it carries only the scopes the hub grants the service's OAuth client
(``oauth_client_allowed_scopes``), and the hub checks it on every use like any other token.

Cookie-authenticated API calls need a second, readable cookie echoed in the
``X-SubsidyHub-CSRF`` header (double submit). Every such call needs it, reads included: the
proxy serves users' own servers on the same origin, so SameSite alone does not keep their
pages from calling the service with an admin's cookie. Tokens are never logged or echoed.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from subsidyhub.errors import Forbidden, InvalidInput
from subsidyhub.names import OAUTH_CLIENT_ID
from subsidyhub.netutil import tls_context

log = logging.getLogger(__name__)

SESSION_COOKIE = "subsidyhub-session"
CSRF_COOKIE = "subsidyhub-csrf"
STATE_COOKIE = "subsidyhub-oauth-state"
NEXT_COOKIE = "subsidyhub-oauth-next"
CSRF_HEADER = "X-SubsidyHub-CSRF"
STATE_MAX_AGE_S = 600


@dataclass(frozen=True)
class BrowserLogin:
    """Where the hub's OAuth endpoints are, and who the service is to them.

    ``authorize_url`` is what the browser is sent to (public); ``token_url`` is what the
    service calls itself (the hub's internal API); ``client_secret`` is the service's API
    token, which JupyterHub uses as its OAuth client secret.
    """

    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str
    token_url: str
    callback_url: str
    hub_logout_url: str

    @classmethod
    def for_service(
        cls,
        *,
        prefix: str,
        hub_api_url: str,
        client_secret: str,
        client_id: str = OAUTH_CLIENT_ID,
        hub_host: str = "",
        hub_base_url: str = "/",
        callback_url: str | None = None,
    ) -> BrowserLogin:
        """From what JupyterHub gives a managed service (``JUPYTERHUB_HOST``, ``_BASE_URL``…)."""
        public_hub = f"{hub_host}{hub_base_url.rstrip('/')}/hub/"
        return cls(
            client_id=client_id,
            client_secret=client_secret,
            authorize_url=f"{public_hub}api/oauth2/authorize",
            token_url=f"{hub_api_url.rstrip('/')}/oauth2/token",
            callback_url=callback_url or f"{prefix}oauth_callback",
            hub_logout_url=f"{public_hub}logout",
        )


def _is_https(request: Request) -> bool:
    # The forwarded header can only make cookies stricter, so it is trusted from anyone.
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _set_cookie(
    response: Response,
    request: Request,
    name: str,
    value: str,
    *,
    path: str,
    http_only: bool = True,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        path=path,
        max_age=max_age,
        httponly=http_only,
        samesite="lax",
        secure=_is_https(request),
    )


def ensure_csrf_cookie(response: Response, request: Request, prefix: str) -> None:
    """Give the page its CSRF value (readable by the page's script) if it has none."""
    if not request.cookies.get(CSRF_COOKIE):
        _set_cookie(
            response, request, CSRF_COOKIE, secrets.token_urlsafe(32), path=prefix, http_only=False
        )


def start_login(
    request: Request, login: BrowserLogin, return_to: str | None = None
) -> RedirectResponse:
    """Send the browser to the hub to sign in; the state comes back to the callback only.

    ``return_to`` is the service's page to end at (the usage page or the admin page); without
    it the callback ends at its own landing.
    """
    state = secrets.token_urlsafe(32)
    query = urlencode(
        {
            "client_id": login.client_id,
            "redirect_uri": login.callback_url,
            "response_type": "code",
            "state": state,
        }
    )
    response = RedirectResponse(f"{login.authorize_url}?{query}", status_code=302)
    _set_cookie(
        response, request, STATE_COOKIE, state, path=login.callback_url, max_age=STATE_MAX_AGE_S
    )
    if return_to is not None:
        _set_cookie(
            response,
            request,
            NEXT_COOKIE,
            return_to,
            path=login.callback_url,
            max_age=STATE_MAX_AGE_S,
        )
    return response


def session_token(request: Request) -> str | None:
    """The token of a cookie session, once the CSRF header matches; None without a session."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    expected = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(
            f"A request signed in by cookie must send the {CSRF_HEADER} header with the value "
            f"of the {CSRF_COOKIE} cookie (the admin page does); reload the page, or send an "
            "Authorization header instead."
        )
    return token


async def _exchange_code(login: BrowserLogin, code: str) -> tuple[str, int | None]:
    """The hub's token for a sign-in code, and how long it lasts (seconds, if the hub says)."""
    form = {
        "client_id": login.client_id,
        "client_secret": login.client_secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": login.callback_url,
    }
    try:
        async with httpx.AsyncClient(timeout=10, verify=tls_context()) as client:
            response = await client.post(login.token_url, data=form)
    except httpx.HTTPError as error:
        log.warning("sign-in: hub token endpoint unreachable: %s", type(error).__name__)
        raise InvalidInput(
            "The service could not reach JupyterHub to finish signing in; open the page "
            "again in a moment."
        ) from None
    if response.status_code != 200:
        log.warning("sign-in: hub refused the code with HTTP %s", response.status_code)
        raise InvalidInput(
            f"JupyterHub refused the sign-in code (HTTP {response.status_code}); it may have "
            "been used already or expired. Open the page again."
        )
    body = response.json()
    expires = body.get("expires_in")
    return str(body["access_token"]), int(expires) if isinstance(expires, int) else None


def oauth_router(
    prefix: str, login: BrowserLogin, landing: str, pages: tuple[str, ...] = ()
) -> APIRouter:
    """``{prefix}oauth_callback`` and ``{prefix}logout``.

    The callback ends at the page the sign-in started from when it is one of ``pages``, else
    at ``landing``.
    """
    router = APIRouter(include_in_schema=False)

    @router.get(f"{prefix}oauth_callback")
    async def oauth_callback(request: Request, code: str = "", state: str = "") -> Response:
        expected = request.cookies.get(STATE_COOKIE, "")
        if not code or not expected or not hmac.compare_digest(state.encode(), expected.encode()):
            raise InvalidInput(
                "This sign-in did not start here or took longer than "
                f"{STATE_MAX_AGE_S // 60} minutes; open the page again (usage or admin) to sign in."
            )
        token, expires_in = await _exchange_code(login, code)
        # Only one of the service's own pages: never an address elsewhere.
        wanted = request.cookies.get(NEXT_COOKIE, "")
        back = wanted if wanted in pages else landing
        response = RedirectResponse(back, status_code=302)
        _set_cookie(response, request, SESSION_COOKIE, token, path=prefix, max_age=expires_in)
        _set_cookie(
            response,
            request,
            CSRF_COOKIE,
            secrets.token_urlsafe(32),
            path=prefix,
            http_only=False,
            max_age=expires_in,
        )
        response.delete_cookie(STATE_COOKIE, path=login.callback_url)
        response.delete_cookie(NEXT_COOKIE, path=login.callback_url)
        return response

    @router.get(f"{prefix}logout")
    async def logout() -> Response:
        """Forget the session here, then log out of the hub too (or its cookie signs back in)."""
        response = RedirectResponse(login.hub_logout_url, status_code=302)
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path=prefix)
        return response

    return router
