"""A teaching lab end to end: a course created and enrolled from a roster with the admin CLI,
a student spawning through the hub, and an outsider refused.

Real components: the ``subsidyhub up`` stack (JupyterHub, configurable-http-proxy, the subsidy
service as a managed service, ``LocalGPUSpawner``) and the ``subsidyhub admin`` CLI as a
separate process on the stack's ledger. The student reads ``GET me`` through the proxy with
their single-user server's own token, as the JupyterLab extension does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..helpers import HubStack, HubUser, process_environment, service_get

pytestmark = pytest.mark.hub

COURSE = "lab-course"


def test_an_enrolled_student_spawns_and_sees_their_allowance(hub: HubStack, tmp_path: Path) -> None:
    hub.admin(
        "course", "create", COURSE, "--name", "Lab course", "--lecturer", "lect-one",
        "--gpu-hours-per-week", "3", "--max-session-hours", "2", "--profiles", "cpu-small,gpu-1",
    )  # fmt: skip
    hub.admin("allocate", COURSE, "500")
    roster = tmp_path / "roster.csv"
    roster.write_text("username,name\nStu-One,Student One\n", encoding="utf-8")
    assert "Dry run" in hub.admin("course", "enrol", COURSE, str(roster))
    applied = hub.admin("course", "enrol", COURSE, str(roster), "--apply")
    assert "Applied to course lab-course: 1 added" in applied

    student = HubUser(hub, "stu-one")
    outsider = HubUser(hub, "outsider")
    try:
        page = student.http.get("/hub/spawn").text
        assert "your allowance is 3.00 of 3 GPU-hours left this week, sessions up to 2 h" in page
        assert "of subsidy available" not in page

        response = student.start_server("gpu-1", COURSE)
        assert response.status_code in (201, 202), response.text
        student.wait_ready()
        token = process_environment(hub.server_process("stu-one")[0])["JUPYTERHUB_API_TOKEN"]
        me = service_get(hub, "me", token)
        assert me.status_code == 200, me.text
        [project] = me.json()["projects"]
        assert project["slug"] == COURSE and project["role"] == "member"
        assert "balance" not in project and "allocated" not in project
        assert project["student"]
        quota = project["quota"]
        assert (quota["gpu_hours_per_week"], quota["max_session_hours"]) == ("3", "2")
        assert quota["profiles"] == ["cpu-small", "gpu-1"]
        assert [s["project"] for s in me.json()["sessions"]] == [COURSE]

        refused = outsider.start_server("cpu-small", COURSE)
        assert refused.status_code == 403, refused.text
        assert refused.json()["message"] == (
            "outsider is not a member of project Lab course. Ask the project's manager to add "
            "you, or pick one of your projects."
        )
        assert outsider.server() is None
    finally:
        student.stop_server()
        student.close()
        outsider.close()
