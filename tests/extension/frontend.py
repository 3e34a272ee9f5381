"""The lab's TypeScript modules run under node, for tests of their rules and words.

The modules are compiled with the extension's own TypeScript (``node_modules/.bin/tsc``) into a
temporary folder as ES modules, and a small harness calls their exported functions with JSON
arguments, in UTC, one node process per batch of calls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.upstream import ROOT

EXTENSION = ROOT / "extensions" / "jupyterlab-subsidy"
TSC = EXTENSION / "node_modules" / ".bin" / "tsc"
NO_NODE = shutil.which("node") is None or not TSC.exists()
NO_NODE_REASON = (
    "needs node and the extension's node_modules (npm ci in extensions/jupyterlab-subsidy)"
)
needs_node = pytest.mark.skipif(NO_NODE, reason=NO_NODE_REASON)
RunTs = Callable[..., list[Any]]

# Calls are ["module.function", *args]; a Set answer comes back as a sorted list.
_HARNESS = """
{imports}
const modules = {{ {names} }};
const calls = JSON.parse(process.argv[2]);
console.log(JSON.stringify(calls.map(([name, ...args]) => {{
  const [module, fn] = name.split('.');
  const value = modules[module][fn](...args);
  return value instanceof Set ? [...value].sort() : value;
}})));
"""


def compile_front_end(out: Path, *modules: str) -> RunTs:
    """Compile ``src/<module>.ts`` (and what they import) into ``out``; returns
    ``run(["module.function", *args], ...)``, the results of those calls."""
    subprocess.run(
        [
            str(TSC),
            *("--outDir", str(out), "--target", "ES2022", "--module", "esnext"),
            *("--moduleResolution", "node", "--strict", "--skipLibCheck"),
            *(f"src/{module}.ts" for module in modules),
        ],
        cwd=EXTENSION,
        check=True,
    )
    for compiled in out.glob("*.js"):
        text = re.sub(r"from '\./(\w+)'", r"from './\1.mjs'", compiled.read_text())
        compiled.with_suffix(".mjs").write_text(text)
    imports = "\n".join(f"import * as {m} from './{m}.mjs';" for m in modules)
    harness = out / "harness.mjs"
    harness.write_text(_HARNESS.format(imports=imports, names=", ".join(modules)))

    def run(*calls: list[Any]) -> list[Any]:
        done = subprocess.run(
            ["node", str(harness), json.dumps(calls)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"TZ": "UTC"},
        )
        results: list[Any] = json.loads(done.stdout)
        return results

    return run


def shown_clock(moment: datetime) -> str:
    """What ``format.clock`` shows for ``moment`` under the harness (UTC, node's en-US): the
    time on the current day, with the day before it on another (a stop past midnight)."""
    moment = moment.astimezone(UTC)
    if moment.date() == datetime.now(UTC).date():
        return f"{moment:%H:%M}"
    return f"{moment:%a}, {moment:%b} {moment.day}, {moment:%H:%M}"
