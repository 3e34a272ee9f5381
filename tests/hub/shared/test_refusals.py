"""A spawn the policy refuses answers with the service's message, not a bare status.

Real components: the ``subsidyhub up`` stack (JupyterHub, npm configurable-http-proxy, the
subsidy service as a managed service, ``LocalGPUSpawner``) and the ``subsidyhub admin`` CLI, run
as a separate process on the stack's SQLite ledger, on JupyterHub 6 and 5.5. Each case sets the
ledger up through the CLI (a project whose balance is tiny; a project whose quota allows CPU
profiles only), then a member spawns through the hub's REST API. Proves that the hub's
``pre_spawn`` hook turns the service's refusal into the API's error with the readable message,
that the spawn page shows the same reason on the disabled profile, and that no server is left
behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from ..conftest import ON_BOTH_MAJORS
from ..helpers import HubStack, HubUser, service_get, signed_in

pytestmark = [pytest.mark.hub, ON_BOTH_MAJORS]


@pytest.fixture
def member(hub: HubStack, request: pytest.FixtureRequest) -> Iterator[HubUser]:
    """A user named after the test, alone in a project of the same name (one per stack)."""
    name = request.node.originalname.removeprefix("test_").replace("_", "-")[:30].strip("-")
    hub.admin("project", "create", name, "--name", f"Lab {name}")
    hub.admin("member", "add", name, name)
    yield from signed_in(hub, name)


def test_tiny_balance(hub: HubStack, member: HubUser) -> None:
    hub.admin("allocate", member.name, "0.05")

    response = member.start_server("cpu-small")

    # 15 minutes of cpu-small's subsidy (0.98/h) is 0.245: more than the project has.
    assert response.status_code == 403, response.text
    message = response.json()["message"]
    assert message.startswith(f"Project Lab {member.name} has HK$0.05 of subsidy left")
    assert "CPU · 2 cores · 4 GiB needs HK$0.24" in message and "top up" in message
    assert member.server() is None

    # The spawn page: no profile can start, so none is checked and Start is off, saying why.
    page = member.http.get("/hub/spawn").text
    assert " checked" not in page.split('class="sh-profiles"', 1)[1]
    assert re.search(r'<button type="submit"[^>]*disabled>Start</button>', page)
    assert f"No profile can start in Lab {member.name} now; each one above says why." in page
    me = service_get(hub, "me", member.new_token()).json()
    assert me["sessions"] == []


def test_quota_cpu_only(hub: HubStack, member: HubUser) -> None:
    hub.admin("allocate", member.name, "100")
    hub.admin("quota", "set", member.name, "--profiles", "cpu-small")

    response = member.start_server("gpu-1")

    assert response.status_code == 403, response.text
    message = response.json()["message"]
    assert message == (
        f"Profile PyTorch · 1× H800 is not allowed in project Lab {member.name}; "
        "allowed: CPU · 2 cores · 4 GiB."
    )
    assert member.server() is None

    # The spawn page says the same before anyone tries: the profile is disabled, with the reason.
    page = member.http.get("/hub/spawn").text
    card = page.split('data-profile="gpu-1"', 1)[1].split("</label>", 1)[0]
    assert 'value="gpu-1" disabled' in card
    assert f'<div class="sh-reason">{message}</div>' in card

    # Posting the form anyway: the page answers with the message alone, not the exception.
    posted = member.http.post(
        "/hub/spawn", data={"profile": "gpu-1", "project": member.name, "_xsrf": member.xsrf}
    )
    assert 'id="sh-refusal"' in posted.text, posted.text[-2000:]
    refusal = posted.text.split('id="sh-refusal"', 1)[1].split("</div>", 1)[0]
    assert f'<p class="mb-1">{message}</p>' in refusal
    assert "Exception" not in refusal and "403" not in refusal
    assert member.server() is None
