"""Quotas and limits, each declared once: name, unit, bounds, help, where it may be set.

A limit caps what a project's members may start: GPUs at once, GPU-hours in a rolling week,
the longest session, which profiles and GPU types. Before this module each one lived under
several names in settings, ledger columns, API bodies, CLI flags and three front ends. Now a
:class:`Limit` here is the single source: the ``defaults:`` keys of ``subsidyhub.yaml``, the
ledger's stored values, the API's request and response fields, the CLI options, the admin
page's form and what ``GET me`` shows are all derived from :data:`LIMITS`. Adding a kind is one
declaration here, its rule in :mod:`subsidyhub.ledger.policy` and their tests
(docs/decisions/limits.md has the recipe).

Values have three forms, converted only here:

* **given**: what a person types or an API client sends — a whole number, a number of hours
  (``"12"``, ``"0.5"``; ASCII digits only), a list of names, or ``None`` (``"none"`` on the
  command line) for no limit;
* **stored**: what the ledger keeps in a project's or member's ``limits`` (JSON): ``int`` GPUs,
  ``int`` milliseconds, a sorted ``list`` of names; an absent key is no limit;
* **shown**: what the API and the CLI print: ``int``, hours as a decimal string, a list.

A limit with ``member_level`` may also be set for one member, overriding the project's value
for that member (a course's per-student allowance is the course's own value of these).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from subsidyhub.errors import InvalidInput
from subsidyhub.slugs import SLUG
from subsidyhub.timeutil import format_hours, hours_to_ms

if TYPE_CHECKING:
    from subsidyhub.settings import Settings

Kind = Literal["count", "hours", "names"]
# What a count or hours limit is measured against: GPUs the project or the member holds now,
# the member's GPU-milliseconds in the rolling week, or how long this one server has run.
Measure = Literal["project_gpus", "member_gpus", "member_gpu_ms_week", "server_ms"]
UNLIMITED = "none"
# Hours as people write them: ASCII digits, at most 4 decimals (0.0001 h = 0.36 s). Decimal()
# alone would also read "١٢٣" or "1e3"; a limit must be exactly what was typed.
_HOURS = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,4})?$")
MAX_NAMES = 1000


@dataclass(frozen=True, slots=True)
class Limit:
    """One quota or limit; see the module docstring for how each field is used."""

    name: str
    kind: Kind
    label: str
    help: str
    maximum: int
    member_level: bool
    measure: Measure | None = None
    # Counts and hours: 0 allowed (nothing may start) unless positive is required.
    positive: bool = False
    # Names: the valid names, from the config (profiles, GPU types).
    choices: Callable[[Settings], set[str]] | None = None
    # Old CLI spellings, by command ("quota set", "member add", "course create").
    old_flags: tuple[tuple[str, str], ...] = ()
    # What an unset value means, as pages show it.
    unset: str = "no limit"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def unit(self) -> str:
        return {"count": "GPUs", "hours": "hours", "names": ""}[self.kind]

    @property
    def bounds(self) -> str:
        low = "more than 0" if self.positive else "0"
        if self.kind == "names":
            return f"at most {MAX_NAMES} names"
        return f"{low} to {self.maximum} {self.unit}"

    def parse(self, value: Any, settings: Settings | None = None) -> Any:
        """A given value (API JSON or CLI text) as stored; ``None`` for no limit.

        Raises :class:`InvalidInput` naming the limit, the value, the range and what to do.
        """
        if value is None or (isinstance(value, str) and value.strip().lower() == UNLIMITED):
            return None
        if self.kind == "names":
            return self._parse_names(value, settings)
        number = self._parse_number(value)
        if number < 0 or number > self.maximum or (self.positive and number == 0):
            raise InvalidInput(
                f"{self.name} {_shown_input(value)} is out of range; give {self.bounds}, "
                f"or '{UNLIMITED}' for no limit"
            )
        return hours_to_ms(number) if self.kind == "hours" else int(number)

    def show(self, stored: Any) -> Any:
        """A stored value as the API and the CLI show it."""
        if stored is None:
            return None
        if self.kind == "hours":
            return format_hours(stored)
        return list(stored) if self.kind == "names" else stored

    def show_use(self, used: int, rounding: str = ROUND_HALF_EVEN) -> Any:
        """A measured use (GPUs, or milliseconds) as shown beside the limit."""
        return format_hours(used, 2, rounding=rounding) if self.kind == "hours" else used

    def _parse_number(self, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidInput(
                f"{self.name} {_shown_input(value)} is not a number; give {self.bounds}, "
                f"or '{UNLIMITED}' for no limit"
            )
        if isinstance(value, int):
            return Decimal(value)
        # A float (a YAML or JSON number) in its shortest form: 0.5 → "0.5", 1e30 → "1e+30".
        text = repr(value) if isinstance(value, float) else str(value).strip()
        if self.kind == "count":
            if not text.isascii() or not text.isdigit():
                raise InvalidInput(
                    f"{self.name} {_shown_input(value)} is not a whole number of {self.unit}; "
                    f"give {self.bounds}, or '{UNLIMITED}' for no limit"
                )
            return Decimal(text)
        if not _HOURS.match(text):
            raise InvalidInput(
                f"{self.name} {_shown_input(value)} is not a number of hours; write digits "
                f"with at most 4 decimals (e.g. 12 or 0.5), {self.bounds}, or '{UNLIMITED}'"
            )
        return Decimal(text)

    def _parse_names(self, value: Any, settings: Settings | None) -> list[str]:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(n, str) for n in value):
            raise InvalidInput(
                f"{self.name} {_shown_input(value)} is not a list of names; give names "
                f"separated by commas, or '{UNLIMITED}' for no limit"
            )
        if len(value) > MAX_NAMES:
            raise InvalidInput(f"{self.name} lists {len(value)} names; give {self.bounds}")
        bad = [n for n in value if not SLUG.matches(n)]
        if bad:
            raise InvalidInput(
                f"{self.name}: {_shown_input(bad[0])} is not a name; use {SLUG.description}"
            )
        if settings is not None and self.choices is not None:
            known = self.choices(settings)
            unknown = sorted(set(value) - known)
            if unknown:
                raise InvalidInput(
                    f"unknown {self.label.lower()} {', '.join(unknown)}; "
                    f"{self.label.lower()} include: {', '.join(sorted(known)) or 'none'}"
                )
        return sorted(set(value))


def _shown_input(value: Any) -> str:
    """A given value in a message: quoted, and cut short so a huge input cannot flood it."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


LIMITS: tuple[Limit, ...] = (
    Limit(
        "project_max_gpus",
        "count",
        "GPUs at once in the project",
        "GPUs the whole project may use at once.",
        maximum=100_000,
        member_level=False,
        measure="project_gpus",
        old_flags=(("quota set", "--max-gpus"),),
    ),
    Limit(
        "member_max_gpus",
        "count",
        "GPUs at once per member",
        "GPUs any one member may use at once.",
        maximum=100_000,
        member_level=True,
        measure="member_gpus",
        old_flags=(("member add", "--max-gpus"), ("course create", "--max-gpus-per-student")),
    ),
    Limit(
        "gpu_hours_per_week",
        "hours",
        "GPU-hours per member in a rolling week",
        "GPU-hours each member may use in the last 7 days (2 GPUs for 1 hour = 2).",
        # 168 hours × 100,000 GPUs
        maximum=16_800_000,
        member_level=True,
        measure="member_gpu_ms_week",
    ),
    Limit(
        "max_session_hours",
        "hours",
        "Longest server",
        "Hours a server may run before it is stopped.",
        # a leap year
        maximum=8784,
        member_level=True,
        measure="server_ms",
        positive=True,
    ),
    Limit(
        "profiles",
        "names",
        "Profiles",
        "Profiles members may start (slugs from the config); no limit: all.",
        maximum=MAX_NAMES,
        member_level=False,
        choices=lambda settings: {p.slug for p in settings.profiles},
    ),
    Limit(
        "gpu_types",
        "names",
        "GPU types",
        "GPU types members may use; no limit: all, an empty list: none.",
        maximum=MAX_NAMES,
        member_level=False,
        choices=lambda settings: set(settings.prices.gpu),
    ),
    Limit(
        "reservable_gpus",
        "count",
        "GPUs its managers may reserve",
        "GPUs of a type the project's managers may reserve for it at once (a lecturer for a "
        "class); admins reserve without this limit. Unset: only admins reserve for it.",
        maximum=100_000,
        member_level=False,
        unset="only admins reserve",
    ),
    Limit(
        "idle_gpu_hours",
        "hours",
        "Idle GPU time before a stop",
        "Hours a server's GPUs may sit idle before it is stopped (its owner is warned first and "
        "may keep it once); 0: never stopped for idle GPUs. Unset: the centre's default.",
        # a leap year
        maximum=8784,
        member_level=False,
        unset="the centre's default",
    ),
)
BY_NAME: dict[str, Limit] = {limit.name: limit for limit in LIMITS}
MEMBER_LIMITS: tuple[Limit, ...] = tuple(limit for limit in LIMITS if limit.member_level)


def get(name: str) -> Limit:
    if name not in BY_NAME:
        raise InvalidInput(f"unknown limit {name!r}; limits: {', '.join(BY_NAME)}")
    return BY_NAME[name]


def parse_changes(
    given: Mapping[str, Any], settings: Settings | None, *, member: bool = False
) -> dict[str, Any]:
    """Given values by name → stored values, every one checked before any is applied."""
    stored = {}
    for name, value in given.items():
        limit = get(name)
        if member and not limit.member_level:
            raise InvalidInput(
                f"{name} is a limit of the whole project, not of one member; set it with "
                "the project's quota"
            )
        stored[name] = limit.parse(value, settings)
    return stored


def apply(stored: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` with ``changes`` applied (``None`` removes a limit); a new dict."""
    result = dict(stored or {})
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def effective(
    project: Mapping[str, Any] | None, member: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A member's limits in force: the project's, with the member's own where set."""
    result = dict(project or {})
    for limit in MEMBER_LIMITS:
        if member and member.get(limit.name) is not None:
            result[limit.name] = member[limit.name]
    return result


def show_all(
    stored: Mapping[str, Any] | None, limits: tuple[Limit, ...] = LIMITS
) -> dict[str, Any]:
    """Every limit of ``limits`` by name, shown (``None`` where there is none)."""
    stored = stored or {}
    return {limit.name: limit.show(stored.get(limit.name)) for limit in limits}


def _measured(measured: Mapping[str, int]) -> Iterator[tuple[Limit, int]]:
    for limit in LIMITS:
        if limit.measure is not None and limit.measure in measured:
            yield limit, measured[limit.measure]


def show_usage(measured: Mapping[str, int]) -> dict[str, Any]:
    """Use against each limit whose measure is given, by limit name (``server_ms`` is per
    server, so ``GET me``, which covers all of a member's servers, leaves it to the lab)."""
    return {limit.name: limit.show_use(used) for limit, used in _measured(measured)}


def show_left(in_force: Mapping[str, Any], measured: Mapping[str, int]) -> dict[str, Any]:
    """What is left of each limit in force whose measure is given (hours rounded down, so
    never more than there is)."""
    return {
        limit.name: limit.show_use(max(0, in_force[limit.name] - used), ROUND_DOWN)
        for limit, used in _measured(measured)
        if in_force.get(limit.name) is not None
    }


def _json_schema(limit: Limit) -> dict[str, Any]:
    if limit.kind == "names":
        given: list[dict[str, Any]] = [
            {
                "type": "array",
                "items": {"type": "string", "pattern": SLUG.pattern},
                "maxItems": MAX_NAMES,
            }
        ]
    else:
        number = {
            "type": "integer" if limit.kind == "count" else "number",
            "minimum": 0,
            "maximum": limit.maximum,
        }
        if limit.positive:
            number |= {"exclusiveMinimum": 0}
            del number["minimum"]
        given = [number]
        if limit.kind == "hours":
            given.append({"type": "string", "pattern": _HOURS.pattern})
    return {"anyOf": [*given, {"type": "null"}], "description": limit.help}


def field(limit: Limit) -> tuple[Any, Any]:
    """A pydantic field of ``limit``'s given value (``None``: no limit), for the config's
    ``defaults`` and the API's bodies: checked by :meth:`Limit.parse` (names are checked
    against the config where it is known), documented with the declaration's JSON schema."""

    def check(value: Any) -> Any:
        try:
            limit.parse(value)
        except InvalidInput as error:
            raise ValueError(error.message) from None
        return value

    annotation = Annotated[Any, AfterValidator(check), WithJsonSchema(_json_schema(limit))]
    return annotation, Field(None, description=limit.help)


def describe(limit: Limit) -> dict[str, Any]:
    """A limit's declaration as the API publishes it (the admin page builds its form from it)."""
    return {
        "name": limit.name,
        "kind": limit.kind,
        "label": limit.label,
        "help": limit.help,
        "unit": limit.unit,
        "minimum": 1 if limit.positive and limit.kind == "count" else 0,
        "maximum": limit.maximum,
        "positive": limit.positive,
        "member_level": limit.member_level,
        "measure": limit.measure,
        "unset": limit.unset,
    }
