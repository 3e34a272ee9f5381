"""The app as a whole: OpenAPI, metrics access, and the managed service behind the real proxy."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from subsidyhub.names import ACCESS_SCOPE
from subsidyhub.netutil import wait_for
from subsidyhub.testing.hub import TestHub

from .helpers import PREFIX, Service, metric_samples

pytestmark = pytest.mark.hub


def test_openapi_is_served_under_the_prefix(service: Service) -> None:
    response = service.http.get("openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "SubsidyHub service"
    paths = document["paths"]
    for path in ("api/v1/me", "api/v1/admissions", "api/v1/projects/{slug}/statement", "metrics"):
        assert PREFIX + path in paths
    assert set(paths[PREFIX + "api/v1/projects"]) == {"get", "post"}


def test_an_unexpected_failure_is_json_with_an_incident_id(service: Service) -> None:
    with service.db.write() as session:
        session.execute(text("DROP TABLE audit"))
    response = service.call("GET", "api/v1/audit", who="centre-admin")
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"status", "message"}
    assert body["status"] == 500
    assert "failed unexpectedly (incident " in body["message"]
    assert "SELECT" not in body["message"]


def test_metrics_need_admin_or_read_metrics(service: Service, jupyterhub: TestHub) -> None:
    response = service.call("GET", "metrics", who="alice")
    assert response.status_code == 403
    assert "read:metrics" in response.json()["message"]
    assert service.call("GET", "metrics", who=None).status_code == 401
    scraper = jupyterhub.token_for("admin", scopes=["read:metrics", ACCESS_SCOPE])
    response = service.call("GET", "metrics", who=None, token=scraper)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = metric_samples(response.text)
    assert found["subsidyhub_hub_token_checks_total", (("result", "accepted"),)] >= 1


def test_managed_service_answers_through_the_proxy(
    jupyterhub: TestHub, tokens: dict[str, str]
) -> None:
    """``python -m subsidyhub.service`` started by the hub, reached at /services/subsidy/."""
    base = f"{jupyterhub.url.rstrip('/')}{PREFIX}"
    # The hub starts it alongside itself; wait for its first (unauthenticated) answer.
    wait_for(f"{base}api/v1/me", timeout=30, ready=lambda r: r.status_code == 401)
    alice = {"Authorization": f"token {tokens['alice']}"}
    me = httpx.get(f"{base}api/v1/me", headers=alice)
    assert me.status_code == 200
    assert me.json()["user"] == "alice"
    assert me.json()["projects"] == []
    assert httpx.get(f"{base}openapi.json").json()["paths"]
    missing = httpx.get(f"{base}api/v1/nothing", headers=alice)
    assert missing.status_code == 404
    assert missing.json()["status"] == 404
    # The default config's profiles, priced by the managed service's own ledger.
    offers = httpx.get(
        f"{base}api/v1/users/alice/profiles",
        headers={"Authorization": f"token {jupyterhub.service_token}"},
    )
    assert offers.status_code == 200
    answer = offers.json()
    assert {key: answer[key] for key in ("user", "currency", "price_version", "projects")} == {
        "user": "alice",
        "currency": "HKD",
        "price_version": 1,
        "projects": [],
    }
    # The default config's GPU types, whose count this host does not declare: nothing to queue.
    assert [(t["gpu_type"], t["gpus"], t["waiting"]) for t in answer["gpu_types"]] == [
        ("a100", None, 0),
        ("h800", None, 0),
    ]
    assert answer["queue"] == []
