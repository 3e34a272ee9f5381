"""SubsidyDockerSpawner against a real Docker engine: real containers reaching the real hub.

Real components: Debian's ``dockerd`` (the private engine of the image cache,
:class:`~subsidyhub.dockerd.PrivateDockerd`, with host networking because it runs without a
bridge), the ``subsidyhub up`` stack with ``backend: docker`` (JupyterHub, the npm proxy, the
subsidy service), and the catalog's PyTorch image as ``make images`` built it, running
``jupyterhub-singleuser`` and the jupyterlab-subsidy extension that reads the balance from the
service. The declared GPU pool (``docker.gpus: ["0"]``) names a GPU
this machine does not have: the GPU profile's device request then fails at container start,
as on any host without the NVIDIA Container Toolkit, and the test checks what the person is
told and that nothing is left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from subsidyhub.catalog import Catalog
from subsidyhub.dockerd import PrivateDockerd
from tests.hub.conftest import hub_config
from tests.hub.helpers import HubStack, HubUser, poll, service_get
from tests.images.conftest import built_reference

pytestmark = [pytest.mark.hub, pytest.mark.slow]

GIB = 1024**3


USERS = ("alice", "bob")


def remove_user_containers(dockerd: PrivateDockerd) -> None:
    """The engine's data is kept between runs: start and end without these users' servers."""
    with dockerd.client() as client:
        for name in USERS:
            for container in client.containers.list(all=True, filters={"name": f"jupyter-{name}"}):
                container.remove(force=True)
            for volume in client.volumes.list(filters={"name": f"subsidyhub-user-{name}"}):
                volume.remove(force=True)


@pytest.fixture(scope="module")
def dockerd(image_engine: PrivateDockerd) -> Iterator[PrivateDockerd]:
    remove_user_containers(image_engine)
    yield image_engine
    remove_user_containers(image_engine)


@pytest.fixture(scope="module")
def stack(
    dockerd: PrivateDockerd,
    catalog: Catalog,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HubStack]:
    image = built_reference(dockerd, catalog, "pytorch")
    config = hub_config() | {
        "backend": "docker",
        "docker": {"image": image, "gpus": ["0"], "network": "host", "shm_fraction": 0.25},
    }
    del config["local"]
    running = HubStack(tmp_path_factory.mktemp("docker-hub"), config)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", dockerd.url)  # the hub's DockerSpawner talks to this engine
        running.start()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def user(stack: HubStack, request: pytest.FixtureRequest) -> Iterator[HubUser]:
    person = HubUser(stack, request.param)
    try:
        yield person
    finally:
        person.stop_server()
        person.close()


def running_sessions(stack: HubStack, user: HubUser) -> list[dict[str, object]]:
    response = service_get(stack, "me", user.new_token("tests/docker"))
    assert response.status_code == 200, response.text
    sessions: list[dict[str, object]] = response.json()["sessions"]
    return sessions


@pytest.mark.parametrize("user", ["alice"], indirect=True)
def test_cpu_profile_runs_a_container_that_reaches_the_hub(
    stack: HubStack, dockerd: PrivateDockerd, user: HubUser
) -> None:
    response = user.start_server("cpu-small")
    assert response.status_code in (201, 202), response.text
    server = user.wait_ready(timeout=120)
    assert server["ready"]

    with dockerd.client() as client:
        [container] = client.containers.list(filters={"name": "jupyter-alice"})
        host = container.attrs["HostConfig"]
        environment = dict(
            item.split("=", 1) for item in container.attrs["Config"]["Env"] if "=" in item
        )
    assert container.status == "running"
    assert host["NetworkMode"] == "host"
    assert host["Memory"] == 4 * GIB
    assert host["CpuQuota"] == 2 * host["CpuPeriod"]
    assert host["ShmSize"] == GIB  # 0.25 of 4 GiB
    assert not host.get("DeviceRequests")
    assert environment["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert container.attrs["Config"]["User"] == "1000:100"

    # The server in the container checks a token by asking the hub's API itself, then
    # answers through the proxy; what it writes lands in the user's volume.
    token = user.new_token("tests/docker")
    saved = httpx.put(
        f"{stack.url}/user/alice/api/contents/hello.txt",
        headers={"Authorization": f"token {token}"},
        json={"type": "file", "format": "text", "content": "written in a container"},
        timeout=30,
    )
    assert saved.status_code in (200, 201), saved.text
    assert saved.json()["path"] == "hello.txt"

    # In the browser session, opening a file completes hub OAuth: the server exchanges the
    # code with the hub and sets its own cookie.
    page = user.http.get("/user/alice/files/hello.txt")
    assert page.status_code == 200, (page.status_code, page.url)
    assert page.text == "written in a container"
    assert any("/hub/api/oauth2/authorize" in str(step.url) for step in page.history)
    assert user.http.cookies.get("jupyterhub-user-alice", path="/user/alice/")

    # The extension inside the image asks the service for the balance the lab shows: the
    # service's own figure between a read before and one after (the server burns meanwhile).
    def balance(me: dict[str, Any]) -> Decimal:
        return Decimal(next(p["balance"] for p in me["projects"] if p["slug"] == "demo"))

    before = balance(service_get(stack, "me", token).json())
    me = user.http.get("/user/alice/subsidy/me", headers={"Authorization": f"token {token}"})
    after = balance(service_get(stack, "me", token).json())
    assert me.status_code == 200, me.text
    assert after <= balance(me.json()) <= before < Decimal(500)
    assert me.json()["server"]["profile"] == "cpu-small"

    [session] = running_sessions(stack, user)
    assert session["profile"] == "cpu-small"
    assert session["project"] == "demo"
    assert Decimal(str(session["list_rate_per_hour"])) > 0

    user.stop_server()
    with dockerd.client() as client:
        assert client.containers.list(all=True, filters={"name": "jupyter-alice"}) == []
        assert "subsidyhub-user-alice" in {v.name for v in client.volumes.list()}
    assert running_sessions(stack, user) == []


@pytest.mark.parametrize("user", ["bob"], indirect=True)
def test_gpu_profile_fails_with_a_clear_message_and_leaves_nothing_running(
    stack: HubStack, dockerd: PrivateDockerd, user: HubUser
) -> None:
    for attempt in (1, 2):  # the second try is told the same: the GPU went back to the pool
        response = user.start_server("gpu-1")
        assert response.status_code in (201, 202, 503), response.text
        poll(lambda: user.server() is None, timeout=120, what=f"bob's GPU spawn {attempt} ended")
        message = (
            response.json()["message"] if response.status_code == 503 else user.spawn_failure()
        )
        assert "needs 1 GPU(s) (host GPU ids 0)" in message, message
        assert "Docker on this host could not provide them" in message
        assert "NVIDIA Container Toolkit" in message
        assert "choose a CPU profile" in message

    with dockerd.client() as client:
        assert client.containers.list(all=True, filters={"name": "jupyter-bob"}) == []
    assert running_sessions(stack, user) == []
