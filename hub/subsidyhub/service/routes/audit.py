"""The audit trail: admins read all of it; a project's managers read their project's part."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from subsidyhub import shapes
from subsidyhub.errors import Forbidden
from subsidyhub.ledger import audit
from subsidyhub.service.auth import ADMINS, CurrentIdentity, project_for
from subsidyhub.service.context import Context
from subsidyhub.service.schemas import MAX_ID

router = APIRouter(tags=["audit"])


def project_of_target(target: str | None) -> str | None:
    """``project:demo`` and ``project:demo/members/alice`` belong to project ``demo``."""
    if not target or not target.startswith("project:"):
        return None
    return target.removeprefix("project:").split("/", 1)[0] or None


@router.get(
    "/audit",
    summary="Audit entries, newest first (admins; managers for their project)",
    response_model=shapes.AuditEntries,
    response_model_exclude_unset=True,
)
def read_audit(
    identity: CurrentIdentity,
    context: Context,
    target: Annotated[
        str | None,
        Query(
            max_length=255,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Exact target or prefix, e.g. project:demo",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Page: entries older than this")
    ] = None,
) -> dict[str, Any]:
    with context.db.read() as session:
        if not identity.is_admin:
            slug = project_of_target(target)
            if slug is None:
                raise Forbidden(
                    f"{identity.actor} may not read the whole audit trail: this needs {ADMINS}. "
                    "Managers can read their project's entries with target=project:<slug>."
                )
            project_for(session, identity, slug, "read the audit trail")
        found = audit.entries(session, target=target, limit=limit, before_id=before_id)
        return {"entries": [shapes.describe_audit_entry(entry) for entry in found]}
