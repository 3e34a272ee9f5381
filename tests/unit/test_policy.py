"""The admission policy as a table of cases: each rule refuses with its code and a clear message."""

from dataclasses import replace

import pytest

from subsidyhub import limits
from subsidyhub.ledger.policy import ProjectFacts, SpawnRequest, Usage, decide

M = 1_000_000


def Quota(**given):
    """Limits in force as the ledger passes them: given values parsed by their declarations."""
    return limits.parse_changes(given, None)


MIN15 = 15 * 60_000
PROJECT = ProjectFacts(
    "demo", "active", "HKD", available=500 * M, has_active_allocation=True, is_member=True
)
GPU = SpawnRequest(
    "alice",
    "gpu-1",
    "h800",
    1,
    hold=8_120_000,
    min_start_ms=MIN15,
    alternatives=(("cpu-small", 245_000),),
)
CPU = SpawnRequest("alice", "cpu-small", None, 0, hold=245_000, min_start_ms=MIN15)


CASES = [
    ("admitted", PROJECT, Quota(), Usage(), GPU, "admitted", "Admitted gpu-1"),
    (
        "not a member",
        replace(PROJECT, is_member=False),
        Quota(),
        Usage(),
        GPU,
        "not_member",
        "not a member of project demo",
    ),
    (
        "suspended",
        replace(PROJECT, status="suspended"),
        Quota(),
        Usage(),
        GPU,
        "project_inactive",
        "is suspended",
    ),
    (
        "no allocation",
        replace(PROJECT, has_active_allocation=False),
        Quota(),
        Usage(),
        GPU,
        "no_allocation",
        "no allocation valid today",
    ),
    (
        "profile",
        PROJECT,
        Quota(profiles=["cpu-small"]),
        Usage(),
        GPU,
        "profile_not_allowed",
        "allowed: cpu-small",
    ),
    (
        "gpu type",
        PROJECT,
        Quota(gpu_types=["a100"]),
        Usage(),
        GPU,
        "gpu_type_not_allowed",
        "GPU type h800",
    ),
    (
        "project cap",
        PROJECT,
        Quota(project_max_gpus=2),
        Usage(project_gpus=2),
        GPU,
        "project_gpu_cap",
        "may use 2 GPUs at once and 2 are in use",
    ),
    (
        "member cap",
        PROJECT,
        Quota(member_max_gpus=1),
        Usage(project_gpus=1, member_gpus=1),
        GPU,
        "member_gpu_cap",
        "You may use 1 GPUs",
    ),
    (
        "week used",
        PROJECT,
        Quota(gpu_hours_per_week="10"),
        Usage(member_gpu_ms_week=10 * 3_600_000),
        GPU,
        "weekly_gpu_hours",
        "used 10.0 of your 10 GPU-hours",
    ),
    (
        "balance",
        replace(PROJECT, available=3_200_000),
        Quota(),
        Usage(),
        GPU,
        "insufficient_balance",
        "Project demo has HK$3.20 of subsidy left; gpu-1 needs HK$8.12 for 15 minutes. Ask your project manager to top up, or pick cpu-small.",
    ),
    (
        "cpu ignores gpu caps",
        PROJECT,
        Quota(project_max_gpus=0, gpu_hours_per_week="0"),
        Usage(),
        CPU,
        "admitted",
        "Admitted",
    ),
    (
        "hold exactly covered",
        replace(PROJECT, available=8_120_000),
        Quota(),
        Usage(),
        GPU,
        "admitted",
        "Admitted",
    ),
]


@pytest.mark.parametrize(
    ("name", "project", "quota", "usage", "request_", "reason", "fragment"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_decide(name, project, quota, usage, request_, reason, fragment):
    decision = decide(project, quota, usage, request_)
    assert decision.reason == reason
    assert decision.allowed is (reason == "admitted")
    assert fragment in decision.message


def test_admitted_carries_hold_and_max_duration():
    decision = decide(
        PROJECT,
        Quota(max_session_hours="8", gpu_hours_per_week="5"),
        Usage(member_gpu_ms_week=3_600_000),
        GPU,
    )
    assert decision.hold == GPU.hold
    assert (
        decision.max_duration_ms == 4 * 3_600_000
    )  # the week's 4 hours left beat the 8-hour session cap


def test_no_cheaper_alternative_says_top_up_only():
    decision = decide(replace(PROJECT, available=100), Quota(), Usage(), GPU)
    assert decision.message.endswith("Ask your project manager to top up.")


def test_messages_name_projects_and_profiles_as_people_know_them():
    named = replace(PROJECT, name="Demo Lab")
    request = replace(GPU, names={"gpu-1": "PyTorch · 1× H800", "cpu-small": "CPU · 2 cores"})
    decision = decide(replace(named, available=300_000), Quota(), Usage(), request)
    assert decision.message == (
        "Project Demo Lab has HK$0.30 of subsidy left; PyTorch · 1× H800 needs HK$8.12 for 15 "
        "minutes. Ask your project manager to top up, or pick CPU · 2 cores."
    )
    refused = decide(named, Quota(profiles=["cpu-small"]), Usage(), request)
    assert refused.message == (
        "Profile PyTorch · 1× H800 is not allowed in project Demo Lab; allowed: CPU · 2 cores."
    )


def test_an_overdrawn_project_is_said_to_have_nothing_left():
    decision = decide(replace(PROJECT, available=-10_000), Quota(), Usage(), GPU)
    assert decision.message.startswith("Project demo has no subsidy left; gpu-1 needs HK$8.12")
