"""What a person sees of a project, read for one project: the member's week of GPU use.

The shape itself (balance, burn, time left, limits, use, warnings) is built by
:func:`subsidyhub.shapes.summarise_project` for ``GET me``, the admin API and ``admin project
show`` alike, so the numbers a researcher sees in JupyterLab are the numbers an admin sees.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from subsidyhub.ledger.accounts import Account
from subsidyhub.ledger.admission import member_gpu_ms_week
from subsidyhub.ledger.models import Member, Project
from subsidyhub.settings import Settings
from subsidyhub.shapes import summarise_project


def project_summary(
    session: Session,
    settings: Settings,
    project: Project,
    account: Account,
    *,
    member: Member | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    """The project as ``GET me`` shows it; with ``username``, that member's quota use too."""
    week_ms = (
        member_gpu_ms_week(session, project.id, username, account.at_ms)
        if username is not None
        else 0
    )
    return summarise_project(
        settings, project, account, member=member, username=username, gpu_ms_week=week_ms
    )
