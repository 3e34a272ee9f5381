"""The audit log: who changed what, with the state before and after, in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from subsidyhub.ledger.db import now_ms
from subsidyhub.ledger.models import AuditEntry


def record(
    session: Session,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    session.add(
        AuditEntry(
            at_ms=now_ms(), actor=actor, action=action, target=target, before=before, after=after
        )
    )


def entries(
    session: Session, *, target: str | None = None, limit: int = 100, before_id: int | None = None
) -> list[AuditEntry]:
    """Newest first; ``target`` matches exactly or as a prefix ("project:demo" and its parts)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target:
        query = query.where(
            (AuditEntry.target == target) | AuditEntry.target.startswith(target + "/")
        )
    if before_id:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query))
