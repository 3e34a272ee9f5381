"""Shared fixtures: real databases (SQLite file and a throwaway PostgreSQL) and settings.

``ledger_db`` is parametrised so every ledger test runs on both databases. PostgreSQL comes
from ``SUBSIDYHUB_TEST_POSTGRES_URL`` when set, otherwise a cluster is started once per run.

Every test gets a database of its own, but migrating one per test cost more than most tests
do: so the Alembic migration runs once per session, backend and price list (a template), and
a test that uses ``ledger_db`` (or ``ledger_url``, the CLI tests) gets a copy of it
(PostgreSQL ``CREATE DATABASE … TEMPLATE``, made a few ahead in a thread; SQLite a copied
file). A test marked ``migrations`` is migrated from empty in its own setup instead, and
``database_url`` alone (``db upgrade``'s own tests) names an empty database.

``jupyterhub`` is the real hub (~5 s to start) of the service and extension tests, shared by
the whole session: those tests only ask it to check tokens, sign users in and mint tokens.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from xdist.scheduler import LoadFileScheduling

from subsidyhub.catalog import Catalog, load_catalog
from subsidyhub.dockerd import PrivateDockerd, unavailable
from subsidyhub.imagebuild import IMAGES, default_cache
from subsidyhub.ledger.db import Database
from subsidyhub.ledger.migrate import upgrade
from subsidyhub.netutil import free_port
from subsidyhub.settings import Settings, parse_settings
from subsidyhub.testing.hub import HUB_ADMIN, USERS, TestHub
from subsidyhub.testing.postgres import ThrowawayPostgres, create_database, drop_database

TEST_CONFIG = {
    "currency": "HKD",
    "subsidy_rate": 0.70,
    "metering": {"interval_seconds": 60, "min_start_minutes": 15},
    "prices": {"cpu_core": 0.50, "memory_gib": 0.10, "gpu": {"h800": 36.00, "a100": 24.00}},
    "profiles": [
        {"slug": "cpu-small", "display_name": "CPU · 2 cores · 4 GiB", "cpu": 2, "memory_gib": 4},
        {
            "slug": "gpu-1",
            "display_name": "PyTorch · 1× H800",
            "cpu": 8,
            "memory_gib": 64,
            "gpus": {"type": "h800", "count": 1},
        },
        {
            "slug": "gpu-2",
            "display_name": "PyTorch · 2× A100",
            "cpu": 16,
            "memory_gib": 128,
            "gpus": {"type": "a100", "count": 2},
        },
    ],
}

_counter = itertools.count()


@pytest.fixture
def settings() -> Settings:
    return parse_settings(TEST_CONFIG, "test-config")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("SUBSIDYHUB_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    cluster = ThrowawayPostgres()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def fresh_database_name() -> str:
    """A database name no other test of this run (or a concurrent run) uses."""
    return f"t{os.getpid()}_{next(_counter)}"


def migrate(url: str, settings: Settings) -> None:
    """Migrate the database at ``url`` from empty and load the price list, then let go of it."""
    db = Database(url)
    try:
        upgrade(db, settings)
    finally:
        db.dispose()


class SqliteTemplates:
    """Migrated SQLite files, one per price list; a test's database is a copy of one."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._files: dict[str, Path] = {}

    def copy(self, settings: Settings, target: Path) -> str:
        key = settings.model_dump_json()
        template = self._files.get(key)
        if template is None:
            template = self._root / f"ledger-{len(self._files)}.sqlite"
            migrate(f"sqlite:///{template}", settings)
            # The last connection closing checkpoints the WAL into the file; a leftover WAL
            # would hold part of the schema, and the copy would lack it.
            wal = template.with_name(template.name + "-wal")
            assert not wal.exists(), f"{wal} outlived the template's engines"
            self._files[key] = template
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"


class PostgresDatabases:
    """Fresh PostgreSQL databases, empty or copies of a migrated template (one per price list).

    ``CREATE DATABASE`` costs the server ~0.1 s of CPU, so a thread makes each kind a few
    databases ahead while tests run; a test still gets one that no test used before.
    """

    AHEAD = 2

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._templates: dict[str, str] = {}
        self._made: dict[str | None, deque[tuple[str, Future[str]]]] = {}
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-databases")

    def _next(self, template: str | None) -> str:
        made = self._made.setdefault(template, deque())
        while len(made) <= self.AHEAD:
            name = fresh_database_name()
            future = self._maker.submit(create_database, self._admin_url, name, template=template)
            made.append((name, future))
        return made.popleft()[1].result()

    def empty(self) -> str:
        return self._next(None)

    def copy(self, settings: Settings) -> str:
        key = settings.model_dump_json()
        template = self._templates.get(key)
        if template is None:
            template = fresh_database_name()
            migrate(create_database(self._admin_url, template), settings)
            self._templates[key] = template
        return self._next(template)

    def close(self) -> None:
        """Drop the templates and the databases made ahead that no test took."""
        self._maker.shutdown(cancel_futures=True)
        unused = [
            name for made in self._made.values() for name, future in made if not future.cancelled()
        ]
        for name in [*unused, *self._templates.values()]:
            drop_database(self._admin_url, name)


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("ledger-templates"))


@pytest.fixture(scope="session")
def postgres_databases(postgres_admin_url: str) -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_admin_url)
    yield databases
    databases.close()


# Set by ``database_url`` on a test whose database it made as a copy of a migrated template.
# A test that asks for one of these fixtures gets a migrated ledger; otherwise an empty one.
MIGRATED = {"ledger_db", "ledger_url"}
COPIED_FROM_TEMPLATE = pytest.StashKey[bool]()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's own database: migrated when the test uses ``ledger_db`` or ``ledger_url``,
    else empty."""
    kind = request.param
    copy = bool(MIGRATED & set(request.fixturenames)) and not request.node.get_closest_marker(
        "migrations"
    )
    request.node.stash[COPIED_FROM_TEMPLATE] = copy
    if copy:
        settings: Settings = request.getfixturevalue("settings")
        if kind == "sqlite":
            templates: SqliteTemplates = request.getfixturevalue("sqlite_templates")
            return templates.copy(settings, tmp_path / "ledger.sqlite")
        return request.getfixturevalue("postgres_databases").copy(settings)
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("postgres_databases").empty()


@pytest.fixture
def ledger_url(database_url: str) -> str:
    """The URL of the test's migrated ledger (a copy of the template), for code that opens it
    itself: the CLI and its config file."""
    return database_url


@pytest.fixture
def ledger_db(
    request: pytest.FixtureRequest, database_url: str, settings: Settings
) -> Iterator[Database]:
    db = Database(database_url)
    if not request.node.stash[COPIED_FROM_TEMPLATE]:
        upgrade(db, settings)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def jupyterhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHub]:
    """A real hub that also runs ``python -m subsidyhub.service`` as its managed service."""
    root = tmp_path_factory.mktemp("jupyterhub")
    hub = TestHub(
        root=root,
        service_url=f"http://127.0.0.1:{free_port()}",
        service_command=[sys.executable, "-m", "subsidyhub.service"],
        service_environment={"SUBSIDYHUB_DATA_DIR": str(root / "service-data")},
    )
    with hub:
        yield hub


@pytest.fixture(scope="session")
def tokens(jupyterhub: TestHub) -> dict[str, str]:
    """One full-permission token per user, minted through the hub's REST API."""
    return {name: jupyterhub.token_for(name) for name in (*USERS, HUB_ADMIN)}


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The repository's image catalog (images/catalog.yaml)."""
    return load_catalog(IMAGES / "catalog.yaml")


@pytest.fixture(scope="session")
def image_engine() -> Iterator[PrivateDockerd]:
    """The private Docker engine that ``make images`` built the catalog's images in
    (:mod:`subsidyhub.imagebuild`), shared with other xdist workers while they need it."""
    reason = unavailable()
    if reason:
        pytest.skip(f"the built notebook images need a Docker engine: {reason}")
    engine = PrivateDockerd(default_cache() / "docker").start()
    try:
        yield engine
    finally:
        engine.close()


def _weight(item: pytest.Item) -> int:
    """How early a test's file should start: waits on hubs and outages first."""
    for rank, mark in enumerate(("slow", "e2e", "hub")):
        if item.get_closest_marker(mark):
            return rank
    return 3


# The folder whose files share the session's hub stacks (tests/hub/shared/__init__.py).
SHARED_STACKS = "tests/hub/shared/"


class FileScheduling(LoadFileScheduling):
    """``--dist loadfile``, except that :data:`SHARED_STACKS` is one unit: one worker runs
    that whole folder, so each of its session stacks starts once per run."""

    def _split_scope(self, nodeid: str) -> str:
        return SHARED_STACKS if nodeid.startswith(SHARED_STACKS) else super()._split_scope(nodeid)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> FileScheduling | None:
    if config.getvalue("dist") != "loadfile":
        return None
    # pytest-xdist 3.7+ sends the units with the most tests first unless told not to; that
    # started the long waits last and left one worker alone for the last ~90 s of `make test`.
    # The order is then pytest_collection_modifyitems's below.
    config.option.loadscopereorder = False
    return FileScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files that wait longest first, so that ``pytest -n`` (``make test``) does not
    end with one worker alone on a long outage test; the order within a file is kept."""
    rank: dict[str, int] = {}
    for item in items:
        rank[str(item.path)] = min(rank.get(str(item.path), 3), _weight(item))
    items.sort(key=lambda item: rank[str(item.path)])
