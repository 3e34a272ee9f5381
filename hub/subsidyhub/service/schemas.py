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

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
    model_validator,
)

from subsidyhub import limits
from subsidyhub.errors import InvalidInput
from subsidyhub.ledger.admission import STOP_SKEW_MS
from subsidyhub.money import AMOUNT_FORM, AmountError, bp_from_fraction, parse_amount
from subsidyhub.slugs import MAX_LENGTH, PROJECT_SLUG, USERNAME_DESCRIPTION, USERNAME_PATTERN
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
_AMOUNT_SCHEMA = {
    "type": "string",
    "pattern": r"^[0-9]{1,13}(\.[0-9]{1,6})?$",
    "description": f"A plain decimal in currency units: {AMOUNT_FORM}. Allocations are at "
    "most bounds.max_amount and prices at most bounds.max_price_per_hour (subsidyhub.yaml).",
}
Amount = Annotated[
    int,
    BeforeValidator(_unsigned_amount),
    WithJsonSchema(_AMOUNT_SCHEMA | {"examples": ["500.00"]}),
]
SignedAmount = Annotated[
    int,
    BeforeValidator(_signed_amount),
    WithJsonSchema(
        _AMOUNT_SCHEMA
        | {"pattern": r"^-?[0-9]{1,13}(\.[0-9]{1,6})?$", "examples": ["500.00", "-20.00"]}
    ),
]
RateBP = Annotated[
    int,
    BeforeValidator(_rate),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(0(\.[0-9]{1,4})?|1(\.0{1,4})?|\.[0-9]{1,4})$",
            "examples": ["0.70"],
        }
    ),
]
Moment = Annotated[
    int,
    BeforeValidator(_moment),
    WithJsonSchema({"type": "string", "examples": ["2027-01-01", "2027-01-01T08:00:00Z"]}),
]
Username = Annotated[
    str,
    Field(pattern=USERNAME_PATTERN, description=f"A JupyterHub user name: {USERNAME_DESCRIPTION}."),
]
# Path and query parameters, checked before any handler runs (an id past 64 bits or a name
# with a NUL would otherwise reach the database).
MAX_ID = 2**63 - 1
SessionId = Annotated[int, Path(ge=1, le=MAX_ID, description="A session's id.")]
ProjectSlugParam = Annotated[
    str,
    Path(
        pattern=PROJECT_SLUG.pattern,
        max_length=MAX_LENGTH,
        description=f"A project's slug: {PROJECT_SLUG.description}.",
    ),
]
UsernameParam = Annotated[
    str, Path(pattern=USERNAME_PATTERN, description=f"A user name: {USERNAME_DESCRIPTION}.")
]
ProjectSlugQuery = Annotated[
    str | None,
    Query(pattern=PROJECT_SLUG.pattern, max_length=MAX_LENGTH, description="A project's slug."),
]
UsernameQuery = Annotated[str | None, Query(pattern=USERNAME_PATTERN, description="A user name.")]
# Text that names something (a server, an IdP group): no control characters.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
ServerName = Annotated[str, Field(max_length=255, pattern=NO_CONTROL)]
# A host GPU id: an NVML index ("0") or UUID ("GPU-8f0c…"), or a MIG device's UUID.
GpuDevice = Annotated[
    str, Field(min_length=1, max_length=96, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")
]
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
    slug: str = Field(
        max_length=MAX_LENGTH, description=f"{PROJECT_SLUG.description}.", examples=["climate-ml"]
    )
    name: str = Field(max_length=200, examples=["Climate ML group"])
    organisation: str | None = Field(None, max_length=MAX_LENGTH)
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


class _LimitChanges(Body):
    @model_validator(mode="after")
    def _changes_something(self) -> _LimitChanges:
        if not self.model_fields_set:
            raise ValueError(f"nothing to change; give any of {', '.join(type(self).model_fields)}")
        return self


# One field per limit (subsidyhub.limits), with its bounds and help; null lifts a limit.
QuotaPut = create_model(
    "QuotaPut",
    __base__=_LimitChanges,
    __doc__="A project's limits to change; fields left out keep their value.",
    **{limit.name: limits.field(limit) for limit in limits.LIMITS},
)
MemberQuota = create_model(
    "MemberQuota",
    __base__=_LimitChanges,
    __doc__="A member's own values of member-level limits (null: the project's applies).",
    **{limit.name: limits.field(limit) for limit in limits.MEMBER_LIMITS},
)


class MemberPut(Body):
    role: str | None = Field(None, description="manager or member; default member")
    quota: MemberQuota | None = Field(None, description="The member's own limits to change.")


class PriceChange(Body):
    cpu_core: Amount | None = Field(None, description="Per CPU core-hour.")
    memory_gib: Amount | None = Field(None, description="Per GiB-hour.")
    gpu: dict[str, Amount] | None = Field(None, description="Per GPU-hour, by GPU type.")
    effective_from: Moment | None = Field(None, description="Default now; not in the past.")
    note: str = Field("", max_length=2000)
    confirm: bool = Field(
        False,
        description="Apply prices that change by more than bounds.price_change_factor "
        "(refused with reason needs_confirmation otherwise).",
    )

    @model_validator(mode="after")
    def _changes_something(self) -> PriceChange:
        if self.cpu_core is None and self.memory_gib is None and not self.gpu:
            raise ValueError("nothing to change; give cpu_core, memory_gib or gpu prices")
        return self


class AdmissionCheck(Body):
    user: Username
    server_name: ServerName = ""
    profile: str = Field(min_length=1, max_length=64)
    project: str | None = Field(None, max_length=MAX_LENGTH)


class AdmissionRequest(AdmissionCheck):
    deadline: Moment | None = Field(
        None,
        description="When the hub stops waiting for the answer (ISO 8601, to the millisecond). "
        "An admission not committed by then is refused with 503 and writes nothing.",
    )
    gpu_devices: list[GpuDevice] = Field(
        default_factory=list,
        max_length=64,
        description="The host GPU ids the server was given (local and Docker backends: NVML "
        "indices or UUIDs), where its GPU utilisation is read.",
    )
    pod: str | None = Field(
        None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The server's pod (Kubernetes), whose GPUs dcgm-exporter reports.",
    )


class StopRequest(Body):
    reason: ReasonCode = "user"


class ServerStopRequest(Body):
    user: Username
    server_name: ServerName = ""
    reason: ReasonCode = "user"
    stopped_at: Moment | None = Field(
        None,
        description="When the hub saw the server stop (ISO 8601, to the millisecond): the "
        "stop the ledger records, even if this notice comes late. Not before the session "
        f"started, nor more than {STOP_SKEW_MS // 1000} s ahead of the service's clock. "
        "Default: now.",
    )


class SsoGroupsPut(Body):
    groups: list[Annotated[str, Field(min_length=1, max_length=255, pattern=NO_CONTROL)]] = Field(
        max_length=5000,
        description="Every group the identity provider reports for the user; [] for none.",
    )


class AdminStopRequest(Body):
    reason: ReasonCode = "admin"
    note: str | None = Field(
        None,
        max_length=500,
        description="Why the server was stopped, for the audit log, e.g. 'left running over the "
        "holidays'.",
    )


GpuType = Annotated[str, Field(min_length=1, max_length=64, pattern=PROJECT_SLUG.pattern)]
GpuTypeQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=64, pattern=PROJECT_SLUG.pattern, description="A GPU type."),
]
ReservationId = Annotated[int, Path(ge=1, le=MAX_ID, description="A reservation's id.")]


class QueueJoin(AdmissionCheck):
    """A place in the queue for a spawn every rule admits but a free GPU."""


class IdleKeep(Body):
    server_name: ServerName = ""


ServerNameQuery = Annotated[
    str, Query(max_length=255, pattern=NO_CONTROL, description="The server's name; '': default.")
]


class QueueLeave(Body):
    user: Username
    server_name: ServerName = ""


class ReservationCreate(Body):
    project: str = Field(min_length=1, max_length=MAX_LENGTH, pattern=PROJECT_SLUG.pattern)
    gpu_type: GpuType
    gpus: int = Field(ge=1, le=100_000, description="GPUs to keep for the project.")
    starts: Moment = Field(description="The first window's start (ISO 8601).")
    ends: Moment = Field(description="The first window's end: 1 minute to 7 days after starts.")
    weeks: int = Field(1, ge=1, le=104, description="Weekly windows in all (1: once).")
    note: str = Field("", max_length=200, pattern=NO_CONTROL)


class ApplicationBody(Body):
    """An application as its applicant writes it (a draft; every bound is the ledger's)."""

    kind: Literal["new", "top_up", "extension"] = Field(
        description="new: a new project; top_up: more money for a project you manage; "
        "extension: a further period (and its amount) after your project's grant ends."
    )
    slug: str = Field(
        max_length=MAX_LENGTH,
        description="new: the project's proposed slug; top_up and extension: your project's.",
        examples=["climate-ml"],
    )
    title: str = Field(max_length=200, examples=["Climate downscaling with diffusion models"])
    organisation: str = Field("", max_length=200, examples=["University of Hong Kong"])
    abstract: str = Field("", max_length=10_000)
    amount: Amount = Field(description="Subsidy requested, in currency units.")
    gpu_hours: dict[GpuType, int] = Field(
        default_factory=dict, description="GPU-hours requested per GPU type (whole hours)."
    )
    starts: Moment = Field(description="When the grant's period starts.")
    ends: Moment = Field(description="When it ends (at most scheme.max_period_months later).")
    team: list[Username] = Field(
        default_factory=list, max_length=200, description="Members' user names."
    )
    plan: list[Amount] = Field(
        default_factory=list,
        max_length=40,
        description="Optional: the amount per quarter from the start; they add up to amount.",
    )
    email: str | None = Field(None, max_length=320, description="Where to tell you of changes.")


class ApplicationComment(Body):
    body: str = Field(min_length=1, max_length=5_000)


class ApplicationReject(Body):
    reason: str = Field(min_length=1, max_length=5_000, description="Told to the applicant.")


class ApplicationApprove(Body):
    subsidy_rate: RateBP = Field(
        description='Share of the list price the scheme pays, e.g. "0.70" (at most '
        "scheme.max_subsidy_rate)."
    )
    amount: Amount | None = Field(None, description="Default: the amount applied for.")
    valid_from: Moment | None = Field(None, description="Default: the period applied for.")
    valid_until: Moment | None = Field(None, description="Default: the period applied for.")
    slug: str | None = Field(
        None, max_length=MAX_LENGTH, description="new: the project's slug, if not the proposed."
    )
    quota: QuotaPut | None = Field(None, description="The project's limits to set.")
    note: str = Field("", max_length=5_000, description="Told to the applicant.")


ApplicationId = Annotated[int, Path(ge=1, le=MAX_ID, description="An application's id.")]
ApplicationStateQuery = Annotated[
    Literal["draft", "submitted", "approved", "rejected", "withdrawn"] | None,
    Query(description="Only applications in this state."),
]
AllocationId = Annotated[int, Path(ge=1, le=MAX_ID, description="An allocation's id.")]


class PlanPut(Body):
    months: dict[str, Amount] = Field(
        description='Planned subsidy per UTC month ("2027-01": "1000.00"), adding up to the '
        "allocation's amount; empty: even over its window."
    )
