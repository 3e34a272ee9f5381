"""Which stop the hub's pages explain, and how the hub keeps it between pages."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from subsidyhub.hubplugin.client import ServiceUnavailable, SubsidyClient
from subsidyhub.hubplugin.stop_notes import StopNotes, newest_to_explain


def stop(reason: str, *, current: bool = True, own: bool = False) -> dict[str, Any]:
    return {"reason": reason, "current": current, "own": own, "message": reason}


@pytest.mark.parametrize(
    ("stops", "shown"),
    [
        ([], None),
        ([stop("subsidy_exhausted")], "subsidy_exhausted"),
        # The owner's own stop is skipped for the one before it, if nothing started since.
        ([stop("stopped", own=True), stop("admin")], "admin"),
        # A server started after the stop: it is history.
        ([stop("idle", current=False)], None),
        ([stop("stopped", own=True), stop("admin", current=False)], None),
    ],
)
def test_the_newest_stop_not_asked_for_and_not_since_restarted(stops, shown):
    found = newest_to_explain(stops)
    assert (found["reason"] if found else None) == shown


class ScriptedClient(SubsidyClient):
    """The real client with its HTTP call replaced by a script of answers."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__("http://service.invalid/", "token")
        self.answers = answers

    async def recent_stops(self, user: str) -> list[dict[str, Any]]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_page_shows_what_is_known_and_asks_again_when_it_is_old():
    now = [0.0]
    client = ScriptedClient(
        [[stop("subsidy_exhausted")], ServiceUnavailable("down"), [stop("admin")]]
    )
    notes = StopNotes(client, max_age_s=30, clock=lambda: now[0])
    alice = SimpleNamespace(name="alice")

    async def scenario() -> list[Any]:
        seen = [notes(alice)]  # nothing known yet: asks in the background
        await asyncio.sleep(0)
        seen.append(notes(alice)["reason"])
        now[0] = 31.0
        seen.append(notes(alice)["reason"])  # old: shown, and asked again (no answer)
        await asyncio.sleep(0)
        seen.append(notes(alice)["reason"])  # an unanswered question keeps what was known
        await asyncio.sleep(0)
        seen.append(notes(alice)["reason"])  # ... and asks once more
        notes.forget("alice")  # she started a server
        seen.append(notes(alice))
        return seen

    assert asyncio.run(scenario()) == [
        None,
        "subsidy_exhausted",
        "subsidy_exhausted",
        "subsidy_exhausted",
        "admin",
        None,
    ]
    assert notes(None) is None


def test_a_stop_has_the_reason_read_at_once_even_with_a_question_pending():
    client = ScriptedClient([[], [stop("subsidy_exhausted")]])
    notes = StopNotes(client, clock=lambda: 0.0)
    alice = SimpleNamespace(name="alice")

    async def scenario() -> Any:
        assert notes(alice) is None  # a page asked just before the stop was recorded
        notes.after_stop("alice")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return notes(alice)

    assert asyncio.run(scenario())["reason"] == "subsidy_exhausted"
