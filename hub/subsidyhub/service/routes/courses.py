"""Course rosters over HTTP: what a roster would change, and with ``apply=true`` the change.

Admins and the course's lecturers (its managers) may post a roster; students may not. The
route parses and authorises; :mod:`subsidyhub.ledger.courses` checks every row, computes the
difference and writes it in one transaction. A roster with problems is a 422 whose
``errors`` lists every one, and nothing is written.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from subsidyhub import shapes
from subsidyhub.errors import InvalidInput
from subsidyhub.ledger import courses
from subsidyhub.service.auth import CurrentIdentity, Identity, project_for
from subsidyhub.service.context import Context, ServiceContext
from subsidyhub.service.schemas import ProjectSlugParam

router = APIRouter(tags=["courses"])

MAX_ROSTER_BYTES = 2 * 1024 * 1024
ROSTER_BODY = {
    "requestBody": {
        "required": True,
        "description": "The roster as CSV (a header row: username, optional name and email) "
        'or as JSON: {"rows": [{"username": "alice", "name": "Alice", "email": "a@x.org"}]}.',
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


def read_roster(body: bytes, content_type: str) -> list[courses.Student]:
    """The students in a CSV or JSON body; raises with every problem found."""
    if len(body) > MAX_ROSTER_BYTES:
        raise InvalidInput(
            f"the roster is {len(body)} bytes; the limit is {MAX_ROSTER_BYTES} bytes. "
            "Split it, or enrol with the CLI"
        )
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"the roster is not UTF-8 text (byte {error.start}); send it as UTF-8"
        ) from None
    if not content_type.startswith("application/json"):
        return courses.parse_roster(text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"the request body is not valid JSON ({error}); send a JSON object"
        ) from None
    rows = document.get("rows") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise InvalidInput(
            'a JSON roster is {"rows": [{"username": ..., "name": ..., "email": ...}, ...]}; '
            "or send the CSV itself with Content-Type: text/csv"
        )
    return courses.roster_from_records(rows)


def _enrol(
    context: ServiceContext,
    identity: Identity,
    slug: str,
    body: bytes,
    content_type: str,
    apply: bool,
) -> dict[str, Any]:
    db = context.db
    with db.write() if apply else db.read() as session:
        project_for(session, identity, slug, "enrol students")
        roster = read_roster(body, content_type)
        plan = courses.enrol(
            session, identity.actor, slug, roster, at_ms=context.clock(), apply=apply
        )
    return plan.describe()


@router.post(
    "/projects/{slug}/roster",
    summary="Enrol a course's students from a roster; a dry run unless apply=true "
    "(admins and the course's lecturers)",
    response_model=shapes.Enrolment,
    response_model_exclude_unset=True,
    openapi_extra=ROSTER_BODY,
)
async def post_roster(
    slug: ProjectSlugParam,
    request: Request,
    identity: CurrentIdentity,
    context: Context,
    apply: Annotated[
        bool, Query(description="Write the changes; without it, only report them.")
    ] = False,
) -> Response:
    body = await request.body()
    content_type = request.headers.get("content-type", "text/csv")
    try:
        result = await run_in_threadpool(_enrol, context, identity, slug, body, content_type, apply)
    except courses.RosterInvalid as invalid:
        return JSONResponse(
            {"status": invalid.status, "message": invalid.message, "errors": invalid.errors},
            status_code=invalid.status,
        )
    return JSONResponse(result)
