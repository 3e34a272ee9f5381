"""The extension's TypeScript types come from the service's own OpenAPI, and cannot drift.

``extensions/jupyterlab-subsidy/openapi.json`` is what the extension's build turns into
``src/api.d.ts`` (openapi-typescript), against which its code is compiled. If the service's
answers change shape and the file is not regenerated (``make api-spec``), this test fails; if
it is regenerated, the extension's build fails wherever its code no longer fits.
"""

from __future__ import annotations

import json

from subsidyhub.service.openapi import spec, text
from tests.upstream import ROOT

COMMITTED = ROOT / "extensions" / "jupyterlab-subsidy" / "openapi.json"


def test_the_committed_openapi_is_the_services():
    assert COMMITTED.read_text(encoding="utf-8") == text(), (
        "extensions/jupyterlab-subsidy/openapi.json is out of date: run `make api-spec` and "
        "rebuild the extension (`make install`)"
    )


def test_every_route_documents_its_answer_and_its_errors():
    """Each operation has a response schema for its success and the shared error shape."""
    document = spec()
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            success = next(code for code in responses if code.startswith("2"))
            content = responses[success].get("content", {})
            if success != "204" and not any("schema" in v for v in content.values()):
                missing.append(f"{method.upper()} {path} {success}")
            if "/health/" not in path and "400" not in responses:
                missing.append(f"{method.upper()} {path} 400")
    assert missing == []
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"status", "message"}
    assert json.loads(COMMITTED.read_text())["info"]["title"] == document["info"]["title"]
