"""SSO group sync on real databases (SQLite and PostgreSQL): changes, precedence, sources.

Each case logs ``erin`` in once with the ``before`` groups, then again with ``after``, and
checks what the second sync reports and what memberships remain.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import projects
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.models import AuditEntry, Member
from subsidyhub.ledger.sso import SyncResult, sync_memberships
from subsidyhub.settings import Settings, Sso, SsoGroup
from subsidyhub.shapes import describe_sync

from .helpers import T0, make_project

MAPPING = (
    SsoGroup(group="physics-ml", project="physics-ml", role="member"),
    SsoGroup(group="physics-ml-pi", project="physics-ml", role="manager"),
    SsoGroup(group="chem-lab", project="chem", role="member"),
    SsoGroup(group="ghost", project="no-such-project", role="manager"),
)
SSO = Sso(groups=MAPPING)


@pytest.fixture
def db(ledger_db: Database, settings: Settings) -> Database:
    for slug in ("physics-ml", "chem", "course-x"):
        make_project(ledger_db, settings, slug, members=())
    return ledger_db


def sync(db: Database, groups: list[str], user: str = "erin", sso: Sso = SSO) -> SyncResult:
    with db.write() as session:
        return sync_memberships(session, sso, user, groups, at_ms=T0)


def memberships(db: Database, user: str) -> dict[str, tuple[str, str]]:
    """Project slug → (role, source) of the user's memberships."""
    with db.read() as session:
        return {
            project.slug: (member.role, member.source)
            for project, member in projects.projects_of(session, user)
        }


@pytest.mark.parametrize(
    ("before", "after", "changes", "left"),
    [
        ([], ["physics-ml"], [("physics-ml", "added", "member", None)], {"physics-ml": "member"}),
        (
            [],
            ["physics-ml-pi", "physics-ml"],
            [("physics-ml", "added", "manager", None)],
            {"physics-ml": "manager"},
        ),
        (
            ["physics-ml"],
            ["physics-ml", "physics-ml-pi"],
            [("physics-ml", "role_changed", "manager", "member")],
            {"physics-ml": "manager"},
        ),
        (
            ["physics-ml-pi"],
            ["physics-ml"],
            [("physics-ml", "role_changed", "member", "manager")],
            {"physics-ml": "member"},
        ),
        (
            ["physics-ml", "chem-lab"],
            ["chem-lab", "unrelated"],
            [("physics-ml", "removed", None, "member")],
            {"chem": "member"},
        ),
        (["physics-ml"], ["physics-ml"], [], {"physics-ml": "member"}),
        (["chem-lab"], [], [("chem", "removed", None, "member")], {}),
        (
            ["physics-ml"],
            ["chem-lab"],
            [("chem", "added", "member", None), ("physics-ml", "removed", None, "member")],
            {"chem": "member"},
        ),
    ],
)
def test_second_login_changes(
    db: Database,
    before: list[str],
    after: list[str],
    changes: list[tuple[str, str, str | None, str | None]],
    left: dict[str, str],
) -> None:
    sync(db, before)
    result = sync(db, after)
    assert [(c.project, c.change, c.role, c.previous_role) for c in result.changes] == changes
    assert memberships(db, "erin") == {slug: (role, "sso") for slug, role in left.items()}


def test_unknown_projects_are_skipped_with_a_warning(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    result = sync(db, ["ghost", "physics-ml"])
    assert result.unknown_projects == ("no-such-project",)
    assert [c.project for c in result.changes] == ["physics-ml"]
    assert "no-such-project" in caplog.text
    assert memberships(db, "erin") == {"physics-ml": ("member", "sso")}


def test_manual_and_roster_memberships_are_never_touched(db: Database) -> None:
    with db.write() as session:
        projects.set_member(session, "admin", "physics-ml", "alice", at_ms=T0)
        roster = projects.set_member(session, "admin", "course-x", "alice", at_ms=T0, role="member")
        roster.source = "roster"
    first = sync(db, ["physics-ml-pi", "chem-lab"], user="alice")
    assert [(c.project, c.change) for c in first.changes] == [("chem", "added")]
    assert first.kept == ("physics-ml",)
    assert memberships(db, "alice") == {
        "chem": ("member", "sso"),
        "course-x": ("member", "roster"),
        "physics-ml": ("member", "manual"),  # the groups imply manager; the admin's role stays
    }
    second = sync(db, [], user="alice")
    assert [(c.project, c.change) for c in second.changes] == [("chem", "removed")]
    assert memberships(db, "alice") == {
        "course-x": ("member", "roster"),
        "physics-ml": ("member", "manual"),
    }


def test_without_remove_unlisted_sso_only_adds_and_reroles(db: Database) -> None:
    keep = Sso(groups=MAPPING, remove_unlisted=False)
    sync(db, ["physics-ml-pi", "chem-lab"], sso=keep)
    result = sync(db, ["physics-ml"], sso=keep)
    assert [(c.project, c.change) for c in result.changes] == [("physics-ml", "role_changed")]
    assert memberships(db, "erin") == {"physics-ml": ("member", "sso"), "chem": ("member", "sso")}


def test_each_change_is_audited_as_sso(db: Database) -> None:
    sync(db, ["physics-ml"])
    sync(db, ["physics-ml-pi"])
    sync(db, [])
    with db.read() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.actor == "sso").order_by(AuditEntry.id)
        ).all()
        trail = [
            (e.action, e.target, (e.before or {}).get("role"), (e.after or {}).get("role"))
            for e in entries
        ]
    target = "project:physics-ml/members/erin"
    assert trail == [
        ("member.add", target, None, "member"),
        ("member.update", target, "member", "manager"),
        ("member.remove", target, "manager", None),
    ]


def test_a_failed_transaction_leaves_neither_memberships_nor_audit(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as session:
        sync_memberships(session, SSO, "erin", ["physics-ml", "chem-lab"], at_ms=T0)
        raise RuntimeError("a later step of the same transaction fails")
    assert memberships(db, "erin") == {}
    with db.read() as session:
        assert session.scalars(select(AuditEntry).where(AuditEntry.actor == "sso")).all() == []
        assert session.scalars(select(Member).where(Member.username == "erin")).all() == []


def test_bad_username_is_refused_and_the_result_describes_itself(db: Database) -> None:
    with pytest.raises(InvalidInput, match="without spaces, slashes or control characters"):
        sync(db, ["physics-ml"], user="bad/name")
    described = describe_sync(sync(db, ["physics-ml", "ghost"]))
    assert described == {
        "user": "erin",
        "changes": [
            {"project": "physics-ml", "change": "added", "role": "member", "previous_role": None}
        ],
        "kept": [],
        "unknown_projects": ["no-such-project"],
    }
