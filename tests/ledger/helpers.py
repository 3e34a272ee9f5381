"""Small builders for ledger tests: a project with money and members, at a chosen time."""

from __future__ import annotations

from dataclasses import dataclass

from subsidyhub.ledger import projects
from subsidyhub.ledger.db import Database
from subsidyhub.money import parse_amount
from subsidyhub.settings import Settings

HOUR = 3_600_000
# A fixed instant (2026-12-01T00:00Z) keeps month arithmetic predictable.
T0 = 1_796_083_200_000


def make_project(
    db: Database,
    settings: Settings,
    slug: str = "demo",
    *,
    amount: str = "500",
    members: tuple[str, ...] = ("alice",),
    at_ms: int = T0,
    valid_until_ms: int | None = None,
) -> None:
    with db.write() as session:
        projects.create_project(
            session, settings, "test", slug=slug, name=slug.title(), at_ms=at_ms
        )
        if amount:
            projects.add_allocation(
                session,
                settings,
                "test",
                slug,
                amount_micro=parse_amount(amount),
                at_ms=at_ms,
                valid_until_ms=valid_until_ms,
            )
        for username in members:
            projects.set_member(session, "test", slug, username, at_ms=at_ms)


@dataclass(frozen=True)
class Reading:
    """A GPU server's utilisation as the service's sampler reads it (``ledger.idle.record``)."""

    utilisation_pct: int
    memory_mib: int = 20_000
