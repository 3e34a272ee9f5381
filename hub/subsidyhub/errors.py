"""Errors meant for people: a status, a message that says what to do, and nothing secret.

Domain code raises these; the service turns them into ``{"status", "message"}`` responses
and the CLI into one readable line with a non-zero exit, so both say the same thing.
"""

from __future__ import annotations


class SubsidyError(Exception):
    status = 400
    reason = "invalid"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason


class InvalidInput(SubsidyError):
    status = 400
    reason = "invalid"


class NotFound(SubsidyError):
    status = 404
    reason = "not_found"


class Conflict(SubsidyError):
    status = 409
    reason = "conflict"


class Forbidden(SubsidyError):
    status = 403
    reason = "forbidden"


class Refused(SubsidyError):
    """A spawn the policy does not admit; ``reason`` is the policy's code."""

    status = 403


class TooLate(SubsidyError):
    """The caller's deadline passed before the change could be committed; nothing was written.

    A 503, so the hub, which stopped waiting at that deadline, treats it like no answer."""

    status = 503
    reason = "deadline_passed"
