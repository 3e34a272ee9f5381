"""Every formatter shows money and time alike: one table of cases, every implementation.

``tests/data/display_cases.json`` is the rule written as examples (docs/decisions/display.md):
the service's Python formatter (:func:`subsidyhub.money.format_money`,
:func:`subsidyhub.timeutil.format_duration`), the notebook widget's
(:mod:`jupyterlab_subsidy.figures`, which cannot import the hub), the lab extension's
``src/format.ts`` (compiled here with the extension's own ``tsc``) and the admin page's
``admin/format.js`` are each run on every case, so any one that drifts fails here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from jupyterlab_subsidy import figures
from subsidyhub.money import currency_display, format_money, parse_amount
from subsidyhub.timeutil import format_duration
from tests.upstream import ROOT

CASES: dict[str, Any] = json.loads(
    (ROOT / "tests" / "data" / "display_cases.json").read_text(encoding="utf-8")
)
EXTENSION = ROOT / "extensions" / "jupyterlab-subsidy"
ADMIN_FORMAT = ROOT / "hub" / "subsidyhub" / "service" / "static" / "admin" / "format.js"
MONEY = [pytest.param(c, id=f"{c['amount']} {c['currency']}") for c in CASES["money"]]
DURATIONS = [pytest.param(c, id=str(c["seconds"])) for c in CASES["durations"]]


@pytest.mark.parametrize("code", sorted(CASES["currencies"]))
def test_the_service_declares_each_currency_as_the_cases_do(code: str) -> None:
    assert currency_display(code).as_dict() == CASES["currencies"][code]


@pytest.mark.parametrize("case", MONEY)
def test_the_service_shows_money_as_the_cases_say(case: dict[str, str]) -> None:
    micro = parse_amount(case["amount"], allow_negative=True)
    assert format_money(micro, case["currency"]) == case["shown"]


@pytest.mark.parametrize("case", MONEY)
def test_the_widget_shows_money_as_the_cases_say(case: dict[str, str]) -> None:
    display = CASES["currencies"][case["currency"]]
    assert figures.money(case["amount"], display) == case["shown"]
    assert figures.money(Decimal(case["amount"]), display) == case["shown"]


@pytest.mark.parametrize("case", DURATIONS)
def test_the_service_and_the_widget_show_durations_as_the_cases_say(
    case: dict[str, Any],
) -> None:
    assert format_duration(case["seconds"] * 1000) == case["shown"]
    assert figures.duration(case["seconds"]) == case["shown"]


# Runs each JavaScript formatter on every case and prints what differs, one line each.
CHECK = """
import { readFileSync } from 'node:fs';
const [casesPath, modulePath] = process.argv.slice(2);
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));
const { money, duration } = await import(modulePath);
const wrong = [];
for (const c of cases.money) {
  const display = cases.currencies[c.currency];
  // As a decimal string and as BigInt micro-units: pages pass both.
  for (const amount of [c.amount, toMicro(c.amount)]) {
    const shown = money(amount, display);
    if (shown !== c.shown) wrong.push(`money(${c.amount}, ${c.currency}) = ${shown}, not ${c.shown}`);
  }
}
for (const c of cases.durations) {
  const shown = duration(c.seconds);
  if (shown !== c.shown) wrong.push(`duration(${c.seconds}) = ${shown}, not ${c.shown}`);
}
console.log(wrong.join('\\n'));
function toMicro(text) {
  const [whole, frac = ''] = text.replace('-', '').split('.');
  const micro = BigInt(whole) * 1000000n + BigInt((frac + '000000').slice(0, 6));
  return text.startsWith('-') ? -micro : micro;
}
"""


def _run_javascript(module: Path, tmp_path: Path) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (make install puts it in place for the extension)")
    script = tmp_path / "check.mjs"
    script.write_text(CHECK, encoding="utf-8")
    answer = subprocess.run(
        [node, str(script), str(ROOT / "tests" / "data" / "display_cases.json"), module.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    return answer.stdout.strip()


def test_the_lab_extension_shows_money_and_durations_as_the_cases_say(tmp_path: Path) -> None:
    tsc = EXTENSION / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.skip("the extension's node_modules are not installed (make install)")
    out = tmp_path / "lib"
    compiled = subprocess.run(
        [
            str(tsc),
            "--outDir",
            str(out),
            "--target",
            "es2022",
            "--module",
            "es2022",
            "--moduleResolution",
            "node",
            "--strict",
            "--skipLibCheck",
            str(EXTENSION / "src" / "format.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    (out / "package.json").write_text('{"type": "module"}', encoding="utf-8")
    assert _run_javascript(out / "format.js", tmp_path) == ""


def test_the_admin_page_shows_money_and_durations_as_the_cases_say(tmp_path: Path) -> None:
    module = tmp_path / "admin" / "format.mjs"
    module.parent.mkdir()
    shutil.copy(ADMIN_FORMAT, module)
    assert _run_javascript(module, tmp_path) == ""
