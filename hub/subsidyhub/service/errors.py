"""Every error the service returns is JSON a person can act on.

The shape is JupyterHub's: ``{"status": <int>, "message": "<what is wrong and what to do>"}``,
plus ``"reason"``, a stable code a client can branch on (a spawn's refusal, a price change
that needs confirming, an admission past its deadline), on every domain error. Domain errors
(:class:`~subsidyhub.errors.SubsidyError`) keep their own status and message; request
validation errors are rewritten to name the field, the value received and what to send
instead; unknown routes, wrong methods and unexpected failures get the same shape. Nothing
from the request's headers (where tokens live) is ever quoted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from subsidyhub.errors import SubsidyError
from subsidyhub.service.auth import Unauthenticated

log = logging.getLogger(__name__)

_WHERE = {"body": "field", "query": "query parameter", "path": "path parameter", "header": "header"}
_MAX_SHOWN = 60


def error_response(
    status: int,
    message: str,
    *,
    reason: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "message": message}
    if reason is not None:
        body["reason"] = reason
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _name(loc: Sequence[Any]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def describe_validation_error(error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence naming the field and the value received."""
    loc = tuple(error.get("loc", ()))
    where, path = (loc[0], loc[1:]) if loc and loc[0] in _WHERE else ("body", loc)
    name = _name(path)
    label = f"{_WHERE[where]} '{name}'"
    kind = error.get("type", "")
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON ({detail}); send a JSON object"
    if not name and where == "body":
        if kind == "missing":
            return "the request body is missing; send a JSON object (see openapi.json)"
        if kind in ("model_attributes_type", "dict_type"):
            return f"the request body must be a JSON object, not {_shown(error.get('input'))}"
        return f"request body: {message}"
    if kind == "missing":
        return f"{label} is required"
    if kind == "extra_forbidden":
        return f"{label} is not a known field; remove it (see openapi.json)"
    if kind == "value_error":
        return f"{label}: {message}"
    return f"{label}: {message[:1].lower()}{message[1:]} (got {_shown(error.get('input'))})"


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = [describe_validation_error(error) for error in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "Invalid request: " + "; ".join(parts) + more + "."


async def on_subsidy_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SubsidyError)
    headers = {"WWW-Authenticate": "token"} if isinstance(error, Unauthenticated) else None
    return error_response(error.status, error.message, reason=error.reason, headers=headers)


async def on_validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return error_response(400, describe_validation_errors(error.errors()))


def allowed_methods(request: Request) -> str:
    """Every method the API serves at this path, from its OpenAPI description."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern, _format, _convertors = compile_path(template)
        if pattern.match(request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    path = request.url.path
    if error.status_code == 404:
        message = f"No such endpoint: {path}. The API is described at openapi.json."
    elif error.status_code == 405:
        allowed = allowed_methods(request)
        message = f"{request.method} is not allowed on {path}; allowed: {allowed or 'none'}."
        return error_response(405, message, headers={"Allow": allowed})
    else:
        message = str(error.detail)
    return error_response(error.status_code, message, headers=error.headers)


async def on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
    incident = uuid.uuid4().hex[:12]
    log.error(
        "unexpected error %s on %s %s",
        incident,
        request.method,
        request.url.path,
        exc_info=error,
    )
    return error_response(
        500,
        f"The subsidy service failed unexpectedly (incident {incident}). Try again, and tell "
        "the centre's admins the incident id if it persists.",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SubsidyError, on_subsidy_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
