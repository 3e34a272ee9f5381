"""An admin stops a running server: the ledger's half, shared by the service and the CLI.

One call closes the session with the final charge, the admin's reason and their note (which
the server's owner is shown with the reason: GET me's ``stops``, the hub's pages) and writes
the audit entry naming the admin and holding the note, in the caller's transaction. Asking the hub to stop the
server is the caller's half: the service does it at once; after the CLI, the service's
reconciliation finds the server running without a session and stops it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from subsidyhub import shapes
from subsidyhub.errors import Conflict, InvalidInput
from subsidyhub.ledger import audit
from subsidyhub.ledger.admission import Stopped, stop

NOTE_MAX = 500  # the ledger's stop_note column


def check_note(note: str | None) -> str | None:
    """The note as stored: trimmed, ``None`` when empty; refused when too long to keep whole."""
    text = (note or "").strip()
    if len(text) > NOTE_MAX:
        raise InvalidInput(
            f"the note is {len(text)} characters; at most {NOTE_MAX} are kept, shorten it"
        )
    return text or None


def stop_by_admin(
    session: Session,
    session_id: int,
    *,
    actor: str,
    now_ms: int,
    reason: str = "admin",
    note: str | None = None,
) -> Stopped:
    """Charge to ``now_ms``, close with ``reason`` and audit it; a closed session is a conflict."""
    note = check_note(note)
    stopped = stop(session, session_id, now_ms=now_ms, reason=reason, note=note)
    if stopped.already:
        raise Conflict(
            f"Session {session_id} ({stopped.username}'s server in {stopped.project}) "
            f"stopped already ({stopped.reason}); nothing to stop. Reload the list."
        )
    label = stopped.server_name or "default"
    after = shapes.describe_stopped(stopped)
    if note is not None:
        after = after | {"note": note}
    audit.record(
        session,
        actor,
        "server.stop",
        f"project:{stopped.project}/servers/{stopped.username}/{label}",
        {"session_id": session_id, "running": True},
        after,
    )
    return stopped
