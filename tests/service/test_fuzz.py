"""schemathesis against the real service: no input makes it fail, and every answer is documented.

The service runs for real (uvicorn, its ledger on SQLite and on PostgreSQL, tokens checked by the
session's JupyterHub) and is seeded with projects, members, an allocation and a running session,
so that ids and names in the generated requests can hit real rows. schemathesis generates, from
the service's own OpenAPI, valid and invalid requests for every operation (NUL characters, huge
numbers and other scripts' digits included), sends each as a service admin and as an ordinary
user, and checks that no answer is a 5xx, and that every status code, content type and body is
one the OpenAPI declares for that operation. The number of examples is bounded so the run takes
well under a minute; a fixed seed makes a failure reproducible.

Both databases' services run side by side, seeded alike, and each generated request goes to
both: generating the cases costs more CPU than answering them, so they are generated once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import hypothesis.errors
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from subsidyhub.ledger.db import Database
from subsidyhub.settings import Settings
from subsidyhub.testing.hub import TestHub
from tests.conftest import PostgresDatabases, SqliteTemplates

from .helpers import Service, running_service, seed

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 12
CALLERS = ("centre-admin", "alice")


@pytest.fixture
def services(
    tmp_path: Path,
    settings: Settings,
    sqlite_templates: SqliteTemplates,
    postgres_databases: PostgresDatabases,
    jupyterhub: TestHub,
    tokens: dict[str, str],
) -> Iterator[dict[str, Service]]:
    """The service on SQLite and on PostgreSQL, seeded alike, so an id names the same row in
    both; alice runs a server in each."""
    urls = {
        "sqlite": sqlite_templates.copy(settings, tmp_path / "ledger.sqlite"),
        "postgres": postgres_databases.copy(settings),
    }
    with contextlib.ExitStack() as stack:
        running: dict[str, Service] = {}
        for kind, url in urls.items():
            db = Database(url)
            stack.callback(db.dispose)
            service = stack.enter_context(
                running_service(db, settings, jupyterhub.api_url, jupyterhub.service_token, tokens)
            )
            seed(service)
            service.admit("alice", "cpu-small", "alpha")
            running[kind] = service
        yield running


@pytest.fixture
def api_schema(services: dict[str, Service]) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(services["sqlite"].app.openapi())
    schema.config.generation.update(allow_x00=True)
    return schema


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_fails_the_service_and_every_answer_is_documented(
    api_schema: schemathesis.BaseSchema, services: dict[str, Service], mode: GenerationMode
) -> None:
    """Each operation's cases run through hypothesis directly: schemathesis' own pytest plugin
    does not load under pytest 9, so the loop it would generate is written out here."""
    failures: list[str] = []
    # The OpenAPI's paths include the service's prefix: a base URL is the server's root.
    targets = {
        kind: f"{service.http.base_url.scheme}://{service.http.base_url.host}:"
        f"{service.http.base_url.port}"
        for kind, service in services.items()
    }
    tokens = next(iter(services.values())).tokens
    sessions = {kind: requests.Session() for kind in targets}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def examples(case: schemathesis.Case) -> None:
            for kind, base_url in targets.items():
                for who in CALLERS:
                    headers = {"Authorization": f"token {tokens[who]}"}
                    sessions[kind].cookies.clear()  # a connection kept, no state carried
                    try:
                        case.call_and_validate(
                            base_url=base_url,
                            session=sessions[kind],
                            headers=headers,
                            checks=CHECKS,
                        )
                    except Exception as error:
                        error.add_note(f"(the service on {kind}, called as {who})")
                        raise

        try:
            examples()
        except hypothesis.errors.Unsatisfiable:
            # An operation that takes no input has no invalid request to send.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as error:  # every operation's failure is reported together
            notes = " ".join(getattr(error, "__notes__", []))
            failures.append(f"{operation.label}: {error} {notes}")
    for session in sessions.values():
        session.close()
    assert not failures, "\n\n".join(failures)
