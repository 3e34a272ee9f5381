"""The service's OpenAPI document, as the JupyterLab extension's types are generated from it.

``python -m subsidyhub.service.openapi FILE`` writes it (``make api-spec`` writes
``extensions/jupyterlab-subsidy/openapi.json``); the extension's build turns that file into
TypeScript types (``npm run api``: openapi-typescript), and tests/extension/test_api_types.py
fails when the committed file no longer matches the service, so the front end is compiled
against the answers the service really gives. The document does not depend on the config or
the database: the app is built on the defaults and an in-memory SQLite that is never opened.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from subsidyhub.ledger.db import Database
from subsidyhub.names import SERVICE_PREFIX
from subsidyhub.settings import parse_settings


def spec() -> dict[str, Any]:
    from subsidyhub.service.app import create_app

    app = create_app(
        parse_settings({}, "defaults"),
        Database("sqlite://"),
        prefix=SERVICE_PREFIX,
        hub_api_url="http://hub/hub/api/",
    )
    return app.openapi()


def text() -> str:
    """The document as committed: sorted keys, two-space indent, a final newline."""
    return json.dumps(spec(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m subsidyhub.service.openapi FILE", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
