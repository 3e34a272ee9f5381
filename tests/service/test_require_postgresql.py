"""On Kubernetes the service refuses a ledger that is not PostgreSQL (SUBSIDYHUB_REQUIRE_POSTGRESQL).

The Helm chart sets the variable because it cannot read the URL in an operator's own Secret
(docs/decisions/kubernetes-database.md); the refusal must be one line without the password.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from subsidyhub.service.run import REQUIRE_POSTGRESQL, EnvironmentProblem, check_database_url

PASSWORD = "pa55word-in-url"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://subsidyhub:{PASSWORD}@postgres/subsidyhub",
        "postgresql://postgres/subsidyhub",
    ],
)
def test_postgresql_is_accepted_when_required(url: str) -> None:
    check_database_url(url, {REQUIRE_POSTGRESQL: "1"})


@pytest.mark.parametrize("flag", ["", "0", "false"])
def test_anything_goes_when_not_required(flag: str) -> None:
    check_database_url("sqlite:///var/lib/subsidyhub/subsidyhub.sqlite", {REQUIRE_POSTGRESQL: flag})
    check_database_url("sqlite://", {})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///var/lib/subsidyhub/subsidyhub.sqlite", "sqlite:…"),
        (f"mysql+pymysql://subsidyhub:{PASSWORD}@mysql/subsidyhub", "mysql+pymysql:…"),
        (f"postgres://subsidyhub:{PASSWORD}@postgres/subsidyhub", "postgres:…"),
    ],
)
def test_other_databases_are_refused_without_the_password(url: str, shown: str) -> None:
    with pytest.raises(EnvironmentProblem) as problem:
        check_database_url(url, {REQUIRE_POSTGRESQL: "1"})
    message = str(problem.value)
    assert f"database URL is {shown}, not PostgreSQL" in message
    assert "postgresql+psycopg://" in message  # what to put instead
    assert PASSWORD not in message
    assert "\n" not in message


def test_the_service_start_stops_with_one_line(tmp_path) -> None:
    """``python -m subsidyhub.service`` with the chart's variable and a SQLite URL exits at once."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTERHUB_", "SUBSIDYHUB_"))
    }
    environ |= {
        "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
        "JUPYTERHUB_API_TOKEN": "secret-token-value",
        "SUBSIDYHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        REQUIRE_POSTGRESQL: "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "subsidyhub.service"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("subsidyhub service: SUBSIDYHUB_REQUIRE_POSTGRESQL is set")
    assert not (tmp_path / "ledger.sqlite").exists()
