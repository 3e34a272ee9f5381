"""Request bodies of the API: strict, and converted to ledger units at the edge.

Every body refuses unknown fields (naming them and the allowed ones), so a typo such as
``"ammount"`` is an error instead of a silently ignored field. Money arrives as decimal
strings (``"500.00"``; a whole JSON integer is exact and accepted too) and becomes integer
micro-units here; a JSON float is refused with a message saying how to write it, because a
float cannot carry an amount exactly. Rates are
fractions (``"0.70"``), times are ISO 8601 dates or datetimes. Fields left out of a change
request are left unchanged; ``null`` (where allowed) removes a limit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from subsidyhub.errors import InvalidInput
from subsidyhub.money import AmountError, bp_from_fraction, parse_amount
from subsidyhub.timeutil import parse_when


def _amount(value: Any, *, allow_negative: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        if isinstance(value, float):
            raise ValueError(
                f"{value!r} is a JSON number with a fraction; send amounts as decimal strings, "
                f'e.g. "{value:.2f}", so no precision is lost'
            )
        raise ValueError(f'{value!r} is not an amount; send a decimal string such as "500.00"')
    try:
        return parse_amount(value, allow_negative=allow_negative)
    except AmountError as error:
        raise ValueError(str(error)) from None


def _unsigned_amount(value: Any) -> int:
    return _amount(value, allow_negative=False)


def _signed_amount(value: Any) -> int:
    return _amount(value, allow_negative=True)


def _rate(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'{value!r} is not a rate; give a fraction such as "0.70"')
    try:
        return bp_from_fraction(repr(value) if isinstance(value, float) else value)
    except AmountError as error:
        raise ValueError(str(error)) from None


def _moment(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time; write it as YYYY-MM-DD or ISO 8601")
    try:
        return parse_when(value, name="time")
    except InvalidInput as error:
        raise ValueError(error.message) from None


# Converted to ledger units (micro-units, basis points, epoch ms) on the way in; the OpenAPI
# description shows what a client sends.
Amount = Annotated[
    int,
    BeforeValidator(_unsigned_amount),
    WithJsonSchema({"type": "string", "examples": ["500.00"]}),
]
SignedAmount = Annotated[
    int,
    BeforeValidator(_signed_amount),
    WithJsonSchema({"type": "string", "examples": ["500.00", "-20.00"]}),
]
RateBP = Annotated[
    int, BeforeValidator(_rate), WithJsonSchema({"type": "string", "examples": ["0.70"]})
]
Moment = Annotated[
    int,
    BeforeValidator(_moment),
    WithJsonSchema({"type": "string", "examples": ["2027-01-01", "2027-01-01T08:00:00Z"]}),
]
Hours = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Username = Annotated[str, Field(min_length=1, max_length=255)]
ServerName = Annotated[str, Field(max_length=255)]
# Stop reasons are codes ("user", "idle", "exhausted"), not prose: they label metrics.
ReasonCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(
                    f"unknown field{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(repr(name) for name in unknown)}; "
                    f"allowed: {', '.join(cls.model_fields)}"
                )
        return data

    def given(self) -> dict[str, Any]:
        """The fields the caller sent (explicit nulls included), for partial updates."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class ProjectCreate(Body):
    slug: str = Field(max_length=63, examples=["climate-ml"])
    name: str = Field(max_length=200, examples=["Climate ML group"])
    organisation: str | None = Field(None, max_length=63)
    subsidy_rate: RateBP | None = Field(
        None, description='Share of the list price the scheme pays, e.g. "0.70".'
    )
    kind: str = Field("research", description="research or course")


class ProjectChange(Body):
    name: str | None = Field(None, max_length=200)
    status: str | None = Field(None, description="active, suspended or closed")
    subsidy_rate: RateBP | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> ProjectChange:
        if not self.model_fields_set:
            raise ValueError("nothing to change; give name, status or subsidy_rate")
        return self


class AllocationCreate(Body):
    amount: SignedAmount = Field(description='Decimal string, e.g. "5000.00".')
    valid_from: Moment | None = Field(None, description="Start of the window; default now.")
    valid_until: Moment | None = Field(None, description="End of the window; default open.")
    note: str = Field("", max_length=2000)
    correction: bool = Field(False, description="A negative entry reversing earlier funds.")

    @model_validator(mode="after")
    def _negative_only_as_correction(self) -> AllocationCreate:
        if self.amount < 0 and not self.correction:
            raise ValueError(
                "amount is negative; to reduce an allocation send "
                '"correction": true with a "note" saying why'
            )
        return self


class MemberPut(Body):
    role: str | None = Field(None, description="manager or member; default member")
    max_gpus: int | None = Field(None, ge=0)
    gpu_hours_per_week: Hours | None = None
    max_session_hours: Hours | None = None


class QuotaPut(Body):
    max_gpus: int | None = Field(None, ge=0)
    member_max_gpus: int | None = Field(None, ge=0)
    gpu_hours_per_week: Hours | None = None
    max_session_hours: Hours | None = None
    profiles: list[str] | None = None
    gpu_types: list[str] | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> QuotaPut:
        if not self.model_fields_set:
            raise ValueError(f"nothing to change; give any of {', '.join(self.model_fields)}")
        return self


class PriceChange(Body):
    cpu_core: Amount | None = Field(None, description="Per CPU core-hour.")
    memory_gib: Amount | None = Field(None, description="Per GiB-hour.")
    gpu: dict[str, Amount] | None = Field(None, description="Per GPU-hour, by GPU type.")
    effective_from: Moment | None = Field(None, description="Default now; not in the past.")
    note: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _changes_something(self) -> PriceChange:
        if self.cpu_core is None and self.memory_gib is None and not self.gpu:
            raise ValueError("nothing to change; give cpu_core, memory_gib or gpu prices")
        return self


class AdmissionRequest(Body):
    user: Username
    server_name: ServerName = ""
    profile: str = Field(min_length=1, max_length=64)
    project: str | None = Field(None, max_length=63)


class StopRequest(Body):
    reason: ReasonCode = "user"


class ServerStopRequest(Body):
    user: Username
    server_name: ServerName = ""
    reason: ReasonCode = "user"


class SsoGroupsPut(Body):
    groups: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        max_length=5000,
        description="Every group the identity provider reports for the user; [] for none.",
    )


class AdminStopRequest(Body):
    reason: ReasonCode = "admin"
