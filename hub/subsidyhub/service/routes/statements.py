"""Monthly statements of a project, as JSON, CSV or printable HTML (admins and the project's managers),
and the centre's monthly utilisation report (admins).

The numbers are sums of the ledger's charge lines, so they reconcile with the ledger to
the micro-unit; this is what the centre attaches to its subsidy claim. Both say how much of
the charges paid for idle GPUs (:mod:`subsidyhub.ledger.waste`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse

from subsidyhub import shapes
from subsidyhub.ledger.statements import statement
from subsidyhub.ledger.utilisation import utilisation
from subsidyhub.reports.statement_html import render_statement_html
from subsidyhub.service.auth import CurrentIdentity, project_for, require_admin
from subsidyhub.service.context import Context
from subsidyhub.service.schemas import ProjectSlugParam
from subsidyhub.timeutil import month_bounds, month_of

router = APIRouter(tags=["statements"])


@router.get(
    "/projects/{slug}/statement",
    summary="A month's statement per user and profile: hours, list, subsidy, co-pay",
    response_model=shapes.Statement,
    response_model_exclude_unset=True,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
            "description": "JSON; with format=csv a CSV download, with format=html a page.",
        }
    },
)
def read_statement(
    slug: ProjectSlugParam,
    identity: CurrentIdentity,
    context: Context,
    month: Annotated[
        str | None, Query(description="YYYY-MM (UTC); default the current month")
    ] = None,
    output: Annotated[Literal["json", "csv", "html"], Query(alias="format")] = "json",
) -> dict[str, Any] | Response:
    chosen = month or month_of(context.clock())
    month_bounds(chosen)  # a malformed month is a 400 before any query
    with context.db.read() as session:
        project = project_for(session, identity, slug, "read the statement")
        result = statement(session, chosen, context.settings.currency, [project])
    if output == "html":
        # Served as a document to open and print, not a download; the CSP forbids any
        # script or outside asset, whatever a project's name holds.
        return HTMLResponse(
            render_statement_html(result, context.settings.centre_name),
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )
    if output == "csv":
        filename = f"subsidyhub-{slug}-{chosen}.csv"
        return Response(
            result.as_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return result.as_dict()


@router.get(
    "/reports/utilisation",
    summary="A month's GPU utilisation per GPU type and project, with idle GPUs (admins)",
    response_model=shapes.Utilisation,
    response_model_exclude_unset=True,
)
def read_utilisation(
    identity: CurrentIdentity,
    context: Context,
    month: Annotated[
        str | None, Query(description="YYYY-MM (UTC); default the current month")
    ] = None,
) -> dict[str, Any]:
    require_admin(identity, "read the utilisation report")
    now = context.clock()
    chosen = month or month_of(now)
    month_bounds(chosen)  # a malformed month is a 400 before any query
    with context.db.read() as session:
        return utilisation(session, context.settings, chosen, now).as_dict()
