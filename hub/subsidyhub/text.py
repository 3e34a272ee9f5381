"""Free text people type (names, notes, e-mail addresses): one check, used everywhere.

A name or a note ends up on statements, in the audit trail, in CSV files and on web pages. A
control character (NUL, escape, a carriage return inside a name) would break some of those
quietly and make a record say something other than it shows, so it is refused wherever text
enters: API, CLI, admin page and rosters all reach the ledger, which calls :func:`check_text`.
"""

from __future__ import annotations

import unicodedata

from subsidyhub.errors import InvalidInput


def check_text(value: str, what: str, *, max_length: int, multiline: bool = False) -> str:
    """``value`` if it has no control characters (newlines too, unless ``multiline``) and at
    most ``max_length`` characters; else :class:`InvalidInput` naming the field and the fix."""
    if len(value) > max_length:
        raise InvalidInput(f"{what} is {len(value)} characters long; give at most {max_length}")
    allowed = "\n\t" if multiline else ""
    for position, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cs") and char not in allowed:
            raise InvalidInput(
                f"{what} contains the control character U+{ord(char):04X} at position "
                f"{position + 1}; remove it"
            )
    return value
