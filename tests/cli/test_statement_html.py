"""``subsidyhub statement --format html``: a printable page whose totals equal the CSV's.

The HTML is parsed with the standard library's parser, as a browser would tokenise it, so
an injected tag would show up as a tag, not as text.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from subsidyhub.ledger import admission, metering
from subsidyhub.ledger.db import Database
from subsidyhub.settings import Settings
from subsidyhub.timeutil import MS_PER_HOUR, to_ms

from .conftest import CLI_ENV, Cli

STARTED = to_ms(datetime(2025, 3, 10, 9, 0, tzinfo=UTC))
MONTH = "2025-03"
HOSTILE = "<script>alert('x')</script> & Co"
CENTRE = "Centre for <GPU> Research"


class StatementPage(HTMLParser):
    """Collects tags, text and the exact amounts (``data-amount``) of each total row."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        kind, amount = found.get("class"), found.get("data-amount")
        if tag == "tr" and kind:
            self._row = []
            self.rows.setdefault(kind, []).append(self._row)
        if tag == "td" and self._row is not None and amount:
            self._row.append(amount)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def use(ledger: Database, settings: Settings, user: str, project: str, hours: int) -> None:
    with ledger.write() as session:
        admitted = admission.admit(
            session,
            settings,
            username=user,
            project_slug=project,
            profile_slug="gpu-1",
            server_name="",
            now_ms=STARTED,
        )
    end = STARTED + hours * MS_PER_HOUR
    metering.charge_until(ledger, end)
    with ledger.write() as session:
        admission.stop(session, admitted.session_id, now_ms=end, reason="user")


@pytest.fixture
def html_cli(cli: Cli, tmp_path: Path, ledger: Database, settings: Settings) -> Cli:
    """Two projects with usage in March 2025, one named to break out of the markup."""
    data = yaml.safe_load(cli.config.read_text(encoding="utf-8"))
    config = tmp_path / "centre.yaml"
    config.write_text(yaml.safe_dump(data | {"centre_name": CENTRE}), encoding="utf-8")
    centre = Cli(config, CliRunner(env=CLI_ENV))
    for slug, name, user in (("demo", "Demo", "alice"), ("odd", HOSTILE, "bob")):
        centre.ok("admin", "project", "create", slug, "--name", name, "--org", "hku")
        centre.ok("admin", "allocate", slug, "500", "--from", "2025-01-01")
        centre.ok("admin", "member", "add", slug, user)
    centre.ok("admin", "project", "create", "idle", "--name", "Idle")
    use(ledger, settings, "alice", "demo", 2)
    use(ledger, settings, "bob", "odd", 3)
    return centre


def test_totals_equal_the_csv_and_names_stay_text(html_cli: Cli) -> None:
    page = StatementPage()
    page.feed(html_cli.ok("statement", "--all", "--month", MONTH, "--format", "html").stdout)
    rows = list(
        csv.DictReader(io.StringIO(html_cli.ok("statement", "--all", "--month", MONTH).stdout))
    )
    total = rows[-1]
    assert total["project"] == "TOTAL"
    [grand] = page.rows["grand-total"]
    assert grand == [total["list"], total["subsidy"], total["copay"]]
    assert grand == ["232.00", "162.40", "69.60"]  # 5 h of gpu-1 at 46.40/h, 70% subsidy
    per_project = {r["project"]: [r["list"], r["subsidy"], r["copay"]] for r in rows[:-1]}
    idle = ["0.00", "0.00", "0.00"]
    assert page.rows["project-total"] == [per_project["demo"], idle, per_project["odd"]]
    assert len(page.rows["line"]) == 2

    text = "".join(page.text)
    assert "script" not in page.tags
    assert HOSTILE in text  # shown as the admin typed it, as text
    assert f"{CENTRE} — subsidy statement" in text
    assert "Organisation: hku" in text
    assert "Subsidy rate: 70% of list" in text
    assert "No usage this month." in text  # the idle project
    assert "HK$232.00" in text


def test_self_contained_and_printable(html_cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "march.html"
    result = html_cli.ok(
        "statement", "demo", "--month", MONTH, "--format", "html", "--output", str(target)
    )
    assert f"to {target}" in result.stdout
    document = target.read_text(encoding="utf-8")
    page = StatementPage()
    page.feed(document)
    assert {"script", "link", "img", "iframe"}.isdisjoint(page.tags)
    for outside in ("src=", "href=", "@import", "url(", "http://", "https://"):
        assert outside not in document
    assert "break-after: page" in document
    assert "@media print" in document
    assert page.rows["project-total"] == [["92.80", "64.96", "27.84"]]
