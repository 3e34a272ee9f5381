"""``GET {prefix}metrics``: Prometheus text, for service admins and ``read:metrics`` tokens.

Project balances are labelled by project, so the endpoint is not public: Prometheus scrapes
it with a hub token holding ``read:metrics`` (the scope that also reads the hub's metrics).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from subsidyhub.errors import Forbidden
from subsidyhub.service.auth import ADMINS, CurrentIdentity
from subsidyhub.service.context import Context

METRICS_SCOPE = "read:metrics"

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The Prometheus text exposition format.",
        }
    },
)
def read_metrics(identity: CurrentIdentity, context: Context) -> Response:
    if not (identity.is_admin or METRICS_SCOPE in identity.scopes):
        raise Forbidden(
            f"{identity.actor} may not read metrics: this needs a token with scope "
            f"{METRICS_SCOPE}, or {ADMINS}."
        )
    return Response(context.metrics.render(), media_type=CONTENT_TYPE_LATEST)
