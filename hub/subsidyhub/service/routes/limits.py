"""The declarations of quotas and limits, for clients that build forms and bars from them.

The admin page's quota and member forms, and the labels of the JupyterLab panel's quota bars,
come from here (:mod:`subsidyhub.limits`), so a new kind of limit shows up there unchanged.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from subsidyhub import limits, shapes
from subsidyhub.service.auth import CurrentIdentity

router = APIRouter(tags=["limits"])
DECLARED = [limits.describe(limit) for limit in limits.LIMITS]


@router.get(
    "/limits",
    summary="Every quota and limit: name, label, unit, bounds",
    response_model=shapes.Limits,
    response_model_exclude_unset=True,
)
def read_limits(identity: CurrentIdentity) -> dict[str, Any]:
    return {"limits": DECLARED}
