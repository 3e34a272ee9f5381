"""SSO group mapping end to end: a real JupyterHub with the real GenericOAuthenticator.

The stack is ``subsidyhub up`` (embedded config, proxy, managed service) with the
authenticator switched to OAuthenticator's ``GenericOAuthenticator`` with ``manage_groups``.
The identity provider is a fake: a minimal OAuth2 authorization-code server in this process
(authorize → redirect with a code, token, userinfo with a ``groups`` claim), because no real
one (Keycloak, Dex) can run on the test machines. Everything else is real: logins go through
the proxy following redirects with httpx (the hub's xsrf and OAuth state cookies included),
and memberships are read back through the service's API with a hub admin's token.
"""

from __future__ import annotations

import functools
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest

from subsidyhub import launcher

from .conftest import hub_config
from .helpers import SERVICE_API, HubStack

pytestmark = [pytest.mark.hub, pytest.mark.slow]

CLIENT_ID = "subsidyhub-tests"
SSO = {
    "groups": [
        {"group": "physics-ml", "project": "physics-ml", "role": "member"},
        {"group": "physics-ml-pi", "project": "physics-ml", "role": "manager"},
        {"group": "chem-lab", "project": "chem"},
        {"group": "demo-pi", "project": "demo", "role": "manager"},
        {"group": "ghost", "project": "no-such-project"},
    ]
}
PROJECTS = ("demo", "physics-ml", "chem")


class FakeIdentityProvider:
    """An OAuth2 provider that logs in whoever :meth:`will_log_in` names, with their groups."""

    def __init__(self) -> None:
        self.client_secret = secrets.token_urlsafe(16)
        self._next: tuple[str, list[str]] | None = None
        self._codes: dict[str, tuple[str, list[str]]] = {}
        self._tokens: dict[str, tuple[str, list[str]]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def will_log_in(self, username: str, groups: list[str]) -> None:
        self._next = (username, groups)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/authorize":
                    assert query["client_id"] == CLIENT_ID and idp._next is not None
                    code = secrets.token_urlsafe(16)
                    idp._codes[code] = idp._next
                    target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                elif url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    if token not in idp._tokens:
                        self._json(401, {"error": "invalid_token"})
                        return
                    name, groups = idp._tokens[token]
                    self._json(200, {"preferred_username": name, "groups": groups})
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                identity = idp._codes.pop(form.get("code", ""), None)
                if self.path != "/token" or identity is None:
                    self._json(400, {"error": "invalid_grant"})
                    return
                token = secrets.token_urlsafe(24)
                idp._tokens[token] = identity
                self._json(200, {"access_token": token, "token_type": "Bearer"})

        return Handler


def oauth_hub_config(stack: HubStack, idp: FakeIdentityProvider) -> str:
    """The embedded config, then GenericOAuthenticator against the fake provider."""
    settings = {
        "client_id": CLIENT_ID,
        "client_secret": idp.client_secret,
        "oauth_callback_url": f"http://127.0.0.1:{stack.port}/hub/oauth_callback",
        "authorize_url": f"{idp.url}/authorize",
        "token_url": f"{idp.url}/token",
        "userdata_url": f"{idp.url}/userinfo",
        "username_claim": "preferred_username",
        "manage_groups": True,
        "auth_state_groups_key": "oauth_user.groups",
        "allow_all": True,
    }
    lines = [
        "import os",
        "from subsidyhub.launcher import apply_embedded_config",
        "c = get_config()  # noqa: F821",
        "apply_embedded_config(c, os.environ)",
        'c.JupyterHub.authenticator_class = "generic-oauth"',
        *(f"c.GenericOAuthenticator.{key} = {value!r}" for key, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider()
    try:
        yield provider
    finally:
        provider.close()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, idp: FakeIdentityProvider
) -> Iterator[HubStack]:
    stack = HubStack(tmp_path_factory.mktemp("sso-hub"), hub_config() | {"sso": SSO})
    config = Path(stack.root / "jupyterhub_oauth_config.py")
    config.write_text(oauth_hub_config(stack, idp), encoding="utf-8")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(launcher, "start", functools.partial(launcher.start, hub_config=config))
            stack.start()
        for slug in PROJECTS[1:]:
            stack.admin("project", "create", slug, "--name", slug.title())
        yield stack
    finally:
        stack.close()


def log_in(
    stack: HubStack, idp: FakeIdentityProvider, name: str, groups: list[str]
) -> httpx.Client:
    """An OAuth login through the proxy: hub → provider → hub callback, cookies kept."""
    idp.will_log_in(name, groups)
    client = httpx.Client(base_url=stack.url, follow_redirects=True, timeout=60)
    response = client.get("/hub/oauth_login", params={"next": "/hub/home"})
    assert response.status_code == 200 and response.url.path == "/hub/home", (
        f"login as {name}: {response.status_code} at {response.url}\n{stack.log_tail()}"
    )
    return client


@pytest.fixture(scope="module")
def admin_token(stack: HubStack, idp: FakeIdentityProvider) -> str:
    client = log_in(stack, idp, "admin", [])
    try:
        response = client.post(
            "/hub/api/users/admin/tokens",
            json={"note": "tests/hub sso"},
            headers={"X-XSRFToken": str(client.cookies.get("_xsrf", path="/hub/"))},
        )
    finally:
        client.close()
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def memberships(stack: HubStack, token: str, user: str) -> dict[str, str]:
    """Project → the user's role there, from the service's members lists."""
    found: dict[str, str] = {}
    for slug in PROJECTS:
        response = httpx.get(
            f"{stack.url}{SERVICE_API}/projects/{slug}/members",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        for member in response.json()["members"]:
            if member["username"] == user:
                found[slug] = member["role"]
    return found


def test_memberships_follow_the_groups_at_every_login(
    stack: HubStack, idp: FakeIdentityProvider, admin_token: str
) -> None:
    # A group mapped to an unknown project is skipped; the login still succeeds.
    log_in(stack, idp, "erin", ["physics-ml", "ghost", "unrelated"]).close()
    assert memberships(stack, admin_token, "erin") == {"physics-ml": "member"}

    log_in(stack, idp, "erin", ["physics-ml-pi", "chem-lab"]).close()
    assert memberships(stack, admin_token, "erin") == {"physics-ml": "manager", "chem": "member"}

    log_in(stack, idp, "erin", ["chem-lab"]).close()
    assert memberships(stack, admin_token, "erin") == {"chem": "member"}
    assert "unknown projects no-such-project" in stack.log_path.read_text(errors="replace")


def test_a_manual_membership_survives_sso_logins(
    stack: HubStack, idp: FakeIdentityProvider, admin_token: str
) -> None:
    # alice is a member of demo by hand (the demo seed); demo-pi would make her its manager.
    log_in(stack, idp, "alice", ["demo-pi", "physics-ml"]).close()
    assert memberships(stack, admin_token, "alice") == {"demo": "member", "physics-ml": "member"}

    log_in(stack, idp, "alice", []).close()
    assert memberships(stack, admin_token, "alice") == {"demo": "member"}
