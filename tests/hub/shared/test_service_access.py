"""Who may read what of the subsidy service through the hub's proxy.

Real components: the ``subsidyhub up`` stack (JupyterHub with the roles the hub plugin loads,
npm configurable-http-proxy, the subsidy service as a managed service checking every token
against the hub, ``LocalGPUSpawner``, a real single-user server), on JupyterHub 6 and 5.5.
Proves that a user's token cannot read another user's data (403 with a message saying who may),
and that a single-user server's own ``JUPYTERHUB_API_TOKEN`` reaches ``GET me`` of its user: the
``access:services!service=subsidy`` scope is granted on both the ``user`` and the ``server``
role (a server token only keeps scopes its user holds).
"""

from __future__ import annotations

import pytest

from ..conftest import ON_BOTH_MAJORS
from ..helpers import HubStack, HubUser, process_environment, service_get

pytestmark = [pytest.mark.hub, ON_BOTH_MAJORS]


def test_a_users_token_cannot_read_another_users_data(hub: HubStack, alice: HubUser) -> None:
    token = alice.new_token()
    own = service_get(hub, "users/alice/profiles", token)
    assert own.status_code == 200, own.text
    assert own.json()["user"] == "alice"

    other = service_get(hub, "users/bob/profiles", token)
    assert other.status_code == 403
    message = other.json()["message"]
    assert message.startswith("alice may not read the spawn options of bob")
    assert "only bob or a service admin" in message


def test_the_servers_own_token_reads_its_users_me_through_the_proxy(
    hub: HubStack, alice: HubUser
) -> None:
    response = alice.start_server("cpu-small")
    assert response.status_code in (201, 202), response.text
    alice.wait_ready()
    environment = process_environment(hub.server_process("alice")[0])
    server_token = environment["JUPYTERHUB_API_TOKEN"]
    assert server_token

    me = service_get(hub, "me", server_token)
    assert me.status_code == 200, me.text
    assert me.json()["user"] == "alice"
    assert me.json()["admin"] is False
    assert [s["profile"] for s in me.json()["sessions"]] == ["cpu-small"]

    # The server's token is alice's, narrowed: it still reads nobody else's data.
    other = service_get(hub, "users/bob/profiles", server_token)
    assert other.status_code == 403
    assert other.json()["message"].startswith("alice may not")
