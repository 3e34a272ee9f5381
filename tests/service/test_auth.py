"""Who may do what, with real tokens checked by a real JupyterHub.

Users read only themselves; managers their project; service admins (hub admins with admin
power, or holders of custom:subsidy:admin) everything; only the hub's own token admits. Every
other token needs the service's access scope, as JupyterHub's ``HubAuth`` requires.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from subsidyhub.ledger.models import Allocation, AuditEntry, Project
from subsidyhub.names import ACCESS_SCOPE, ADMIN_SCOPE
from subsidyhub.testing.hub import CENTRE_ADMIN, TestHub

from .helpers import Service, seed

pytestmark = pytest.mark.hub


def counts(service: Service) -> tuple[int, int, int]:
    with service.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
            session.scalar(select(func.count()).select_from(Allocation)) or 0,
            session.scalar(select(func.count()).select_from(Project)) or 0,
        )


def test_no_token_is_401_with_a_message(service: Service) -> None:
    response = service.call("GET", "api/v1/me", who=None)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == 401
    assert "Authorization" in body["message"]
    assert response.headers["www-authenticate"] == "token"


def test_wrong_authorization_scheme_is_401(service: Service) -> None:
    response = service.http.get("api/v1/me", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert response.status_code == 401
    assert "'token <token>' or 'Bearer <token>'" in response.json()["message"]


def test_invalid_token_is_401_and_never_echoed(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    bogus = "not-a-real-token-5f2d9c0e7b1a4e8f"
    with caplog.at_level(logging.DEBUG):
        for scheme in ("token", "Bearer"):
            response = service.http.get("api/v1/me", headers={"Authorization": f"{scheme} {bogus}"})
            assert response.status_code == 401
            assert response.json()["status"] == 401
            assert "did not accept this token" in response.json()["message"]
            assert bogus not in response.text
            assert all(bogus not in value for value in response.headers.values())
    assert bogus not in caplog.text


def test_bearer_scheme_is_accepted(service: Service) -> None:
    response = service.http.get(
        "api/v1/me", headers={"Authorization": f"Bearer {service.tokens['alice']}"}
    )
    assert response.status_code == 200
    assert response.json()["user"] == "alice"


def test_user_reads_only_themself(service: Service) -> None:
    seed(service)
    me = service.ok("GET", "api/v1/me", who="alice")
    assert me["user"] == "alice"
    assert me["admin"] is False
    assert [p["slug"] for p in me["projects"]] == ["alpha"]
    assert service.ok("GET", "api/v1/users/alice/profiles", who="alice")["user"] == "alice"

    response = service.call("GET", "api/v1/users/bob/profiles", who="alice")
    assert response.status_code == 403
    body = response.json()
    assert {"status", "message"} <= set(body) <= {"status", "message", "reason"}
    assert body["status"] == 403
    assert "alice may not read the spawn options of bob" in body["message"]


ADMIN_ONLY = [
    ("GET", "api/v1/projects", None),
    ("POST", "api/v1/projects", {"slug": "gamma", "name": "Gamma"}),
    ("PATCH", "api/v1/projects/alpha", {"status": "suspended"}),
    ("POST", "api/v1/projects/alpha/allocations", {"amount": "1000.00"}),
    ("PUT", "api/v1/projects/alpha/quota", {"project_max_gpus": 8}),
    ("POST", "api/v1/prices", {"cpu_core": "9.00"}),
    ("GET", "api/v1/audit", None),
    ("GET", "api/v1/sessions", None),
]


def test_admin_endpoints_refuse_users_and_write_nothing(service: Service) -> None:
    seed(service)
    before = counts(service)
    for method, path, body in ADMIN_ONLY:
        for who in ("alice", "bob"):  # a plain member, and alpha's manager
            response = service.call(method, path, who=who, json=body)
            assert response.status_code == 403, (method, path, who, response.text)
            message = response.json()["message"]
            assert message.startswith(f"{who} may not "), message
            assert "custom:subsidy:admin" in message
    assert counts(service) == before


def test_manager_reads_their_project_but_not_another(service: Service) -> None:
    seed(service)
    project = service.ok("GET", "api/v1/projects/alpha", who="bob")
    assert project["slug"] == "alpha"
    assert project["allocated"] == "500.00"
    members = service.ok("GET", "api/v1/projects/alpha/members", who="bob")["members"]
    assert {m["username"]: m["role"] for m in members} == {"alice": "member", "bob": "manager"}
    assert service.ok("GET", "api/v1/projects/alpha/allocations", who="bob")["allocations"]
    assert service.ok("GET", "api/v1/projects/alpha/statement", who="bob")["lines"] == []
    entries = service.ok("GET", "api/v1/audit?target=project:alpha", who="bob")["entries"]
    assert entries
    assert all(entry["target"].startswith("project:alpha") for entry in entries)

    for path in (
        "api/v1/projects/beta",
        "api/v1/projects/beta/members",
        "api/v1/projects/beta/statement",
        "api/v1/audit?target=project:beta",
    ):
        response = service.call("GET", path, who="bob")
        assert response.status_code == 403, path
        assert "needs a manager of beta" in response.json()["message"]
    # A project that does not exist answers like one bob does not manage: no names leak.
    response = service.call("GET", "api/v1/projects/nope", who="bob")
    assert response.status_code == 403
    assert "alpha" not in response.json()["message"]
    assert "beta" not in response.json()["message"]


def test_member_is_not_a_manager(service: Service) -> None:
    seed(service)
    for path in ("api/v1/projects/alpha", "api/v1/projects/alpha/members"):
        assert service.call("GET", path, who="alice").status_code == 403


def test_manager_manages_members_of_their_project_only(service: Service) -> None:
    seed(service)
    added = service.ok("PUT", "api/v1/projects/alpha/members/carol", who="bob", json={})
    assert added == {
        "username": "carol",
        "role": "member",
        "quota": {"member_max_gpus": None, "gpu_hours_per_week": None, "max_session_hours": None},
        "source": "manual",
        "name": None,
        "email": None,
    }
    response = service.call(
        "PUT",
        "api/v1/projects/alpha/members/carol",
        who="bob",
        json={"quota": {"member_max_gpus": 8}},
    )
    assert response.status_code == 403
    assert "not their quota (member_max_gpus)" in response.json()["message"]
    service.ok("DELETE", "api/v1/projects/alpha/members/carol", who="bob", status=204)
    assert (
        service.call("PUT", "api/v1/projects/beta/members/bob", who="bob", json={}).status_code
        == 403
    )
    assert (
        service.call("DELETE", "api/v1/projects/beta/members/carol", who="bob").status_code == 403
    )
    members = service.ok("GET", "api/v1/projects/beta/members", who="centre-admin")["members"]
    assert [m["username"] for m in members] == ["carol"]


@pytest.mark.parametrize("admin", ["centre-admin", "admin"])
def test_service_admins_administer(service: Service, admin: str) -> None:
    project = service.ok(
        "POST",
        "api/v1/projects",
        who=admin,
        status=201,
        json={"slug": "gamma", "name": "Gamma", "subsidy_rate": "0.5"},
    )
    assert project["subsidy_rate"] == "0.5"
    service.ok(
        "POST",
        "api/v1/projects/gamma/allocations",
        who=admin,
        status=201,
        json={"amount": "250.00"},
    )
    quota = service.ok(
        "PUT", "api/v1/projects/gamma/quota", who=admin, json={"project_max_gpus": 4}
    )
    assert quota["quota"]["project_max_gpus"] == 4
    changed = service.ok("PATCH", "api/v1/projects/gamma", who=admin, json={"name": "Gamma II"})
    assert changed["name"] == "Gamma II"
    assert [p["slug"] for p in service.ok("GET", "api/v1/projects", who=admin)["projects"]] == [
        "gamma"
    ]
    entries = service.ok("GET", "api/v1/audit?target=project:gamma", who=admin)["entries"]
    assert {e["actor"] for e in entries} == {admin}
    assert service.ok("GET", "api/v1/me", who=admin)["admin"] is True


def test_hub_admin_token_without_admin_power_is_a_plain_user(
    service: Service, jupyterhub: TestHub
) -> None:
    narrow = jupyterhub.token_for("admin", scopes=["access:services!service=subsidy"])
    assert service.call("GET", "api/v1/me", who=None, token=narrow).json()["admin"] is False
    assert service.call("GET", "api/v1/projects", who=None, token=narrow).status_code == 403


# A request of each kind: a user's own view, a user's data, an admin read, an admin change.
NEEDS_ACCESS = [
    ("GET", "api/v1/me", None),
    ("GET", "api/v1/users/{who}/profiles", None),
    ("GET", "api/v1/projects", None),
    ("POST", "api/v1/projects/alpha/allocations", {"amount": "1000.00"}),
]


@pytest.mark.parametrize(
    ("who", "scopes", "full_lists_projects"),
    [
        ("alice", ["read:users!user=alice"], 403),
        ("admin", ["read:users", "read:servers"], 200),
    ],
)
def test_a_token_without_the_access_scope_is_refused(
    service: Service, jupyterhub: TestHub, who: str, scopes: list[str], full_lists_projects: int
) -> None:
    """A token minted for another purpose reads and changes nothing; a full one does."""
    seed(service)
    before = counts(service)
    other_purpose = jupyterhub.token_for(who, scopes=scopes)
    for method, template, body in NEEDS_ACCESS:
        path = template.format(who=who)
        response = service.call(method, path, who=None, token=other_purpose, json=body)
        assert response.status_code == 403, (method, path, response.text)
        message = response.json()["message"]
        assert message.startswith(f"This token of {who} lacks the scope {ACCESS_SCOPE}")
        assert "Token page" in message
        assert other_purpose not in response.text
    assert counts(service) == before
    assert service.ok("GET", "api/v1/me", who=who)["user"] == who
    assert service.ok("GET", f"api/v1/users/{who}/profiles", who=who)["user"] == who
    assert service.call("GET", "api/v1/projects", who=who).status_code == full_lists_projects


def test_the_access_scope_of_all_services_counts(service: Service, jupyterhub: TestHub) -> None:
    every_service = jupyterhub.token_for("admin", scopes=["access:services"])
    me = service.call("GET", "api/v1/me", who=None, token=every_service)
    assert me.status_code == 200, me.text
    assert me.json()["admin"] is False  # no admin power in this token


def test_the_admin_scope_needs_no_access_scope(service: Service, jupyterhub: TestHub) -> None:
    admin_only = jupyterhub.token_for(CENTRE_ADMIN, scopes=[ADMIN_SCOPE])
    response = service.call("GET", "api/v1/projects", who=None, token=admin_only)
    assert response.status_code == 200, response.text


def test_only_the_hub_admits_and_stops(service: Service) -> None:
    seed(service)
    body = {"user": "alice", "profile": "cpu-small"}
    for who in ("alice", "bob", "centre-admin", "admin"):
        response = service.call("POST", "api/v1/admissions", who=who, json=body)
        assert response.status_code == 403
        assert "only JupyterHub itself" in response.json()["message"]
    admitted = service.ok("POST", "api/v1/admissions", who="hub", status=201, json=body)
    for who in ("alice", "centre-admin"):
        response = service.call(
            "POST", f"api/v1/sessions/{admitted['session_id']}/stop", who=who, json={}
        )
        assert response.status_code == 403
    stopped = service.ok(
        "POST", f"api/v1/sessions/{admitted['session_id']}/stop", who="hub", json={}
    )
    assert stopped["already_stopped"] is False


def test_service_token_has_no_user_view(service: Service) -> None:
    response = service.call("GET", "api/v1/me", who="hub")
    assert response.status_code == 403
    assert "describes a user" in response.json()["message"]


def test_cached_tokens_cost_the_hub_nothing(service: Service) -> None:
    def checks() -> float:
        text = service.ok_text("metrics", who="centre-admin")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("subsidyhub_hub_token_checks_total{")
        )

    service.ok("GET", "api/v1/me", who="alice")
    before = checks()
    for _ in range(20):
        service.ok("GET", "api/v1/me", who="alice")
    assert checks() == before
