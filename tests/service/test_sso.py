"""``PUT users/{name}/sso-groups``: only the hub syncs; the body is validated; the mapping applies.

The service runs with ``sso.groups`` mapping ``alpha-users`` to project alpha (member) and
``beta-pi`` to beta (manager); tokens are checked by the real hub of the service fixtures.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from subsidyhub.service.app import create_app
from subsidyhub.settings import Settings, parse_settings

from ..conftest import TEST_CONFIG
from .helpers import PREFIX, Service, seed, serve

pytestmark = pytest.mark.hub

SSO = {
    "groups": [
        {"group": "alpha-users", "project": "alpha"},
        {"group": "beta-pi", "project": "beta", "role": "manager"},
    ]
}


@pytest.fixture
def settings() -> Settings:
    return parse_settings(TEST_CONFIG | {"sso": SSO}, "test-config")


def members(service: Service, slug: str) -> dict[str, str]:
    found = service.ok("GET", f"api/v1/projects/{slug}/members", who="centre-admin")
    return {member["username"]: member["role"] for member in found["members"]}


def put_groups(service: Service, user: str, body: Any, *, who: str | None) -> httpx.Response:
    return service.call("PUT", f"api/v1/users/{user}/sso-groups", who=who, json=body)


def test_the_hub_syncs_memberships_and_manual_ones_stay(service: Service) -> None:
    seed(service)
    response = put_groups(
        service, "dave%40example.edu", {"groups": ["alpha-users", "beta-pi", "x"]}, who="hub"
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user": "dave@example.edu",
        "changes": [
            {"project": "alpha", "change": "added", "role": "member", "previous_role": None},
            {"project": "beta", "change": "added", "role": "manager", "previous_role": None},
        ],
        "kept": [],
        "unknown_projects": [],
    }
    assert members(service, "beta") == {"carol": "member", "dave@example.edu": "manager"}

    # alice is alpha's member by hand: her groups neither re-role nor remove that.
    synced = put_groups(service, "alice", {"groups": ["beta-pi"]}, who="hub").json()
    assert [(c["project"], c["change"]) for c in synced["changes"]] == [("beta", "added")]
    again = put_groups(service, "alice", {"groups": ["alpha-users"]}, who="hub").json()
    assert [(c["project"], c["change"]) for c in again["changes"]] == [("beta", "removed")]
    assert again["kept"] == ["alpha"]
    assert members(service, "alpha") == {
        "alice": "member",
        "bob": "manager",
        "dave@example.edu": "member",
    }


@pytest.mark.parametrize("who", ["alice", "centre-admin", "admin"])
def test_only_the_hub_may_sync(service: Service, who: str) -> None:
    seed(service)
    response = put_groups(service, "alice", {"groups": ["beta-pi"]}, who=who)
    assert response.status_code == 403
    assert "only JupyterHub itself" in response.json()["message"]
    assert put_groups(service, "alice", {"groups": ["beta-pi"]}, who=None).status_code == 401
    assert members(service, "beta") == {"carol": "member"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "field 'groups' is required"),
        ({"groups": "beta-pi"}, "field 'groups': input should be a valid list"),
        ({"groups": ["beta-pi", ""]}, "field 'groups[1]': string should have at least 1"),
        ({"groups": [], "group": ["x"]}, "unknown field 'group'; allowed: groups"),
    ],
)
def test_bad_bodies_say_what_to_send(service: Service, body: Any, message: str) -> None:
    response = put_groups(service, "alice", body, who="hub")
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_without_a_mapping_the_service_says_how_to_configure_one(
    service: Service,
) -> None:
    app = create_app(
        parse_settings(TEST_CONFIG, "test-config"),
        service.db,
        prefix=PREFIX,
        hub_api_url="http://127.0.0.1:9/hub/api",
        service_token=service.hub_token,
        clock=service.clock,
    )
    with serve(app) as base_url:
        response = httpx.put(
            f"{base_url}{PREFIX}api/v1/users/alice/sso-groups",
            json={"groups": ["beta-pi"]},
            headers={"Authorization": f"token {service.hub_token}"},
        )
    assert response.status_code == 409
    assert "sso.groups is empty" in response.json()["message"]
