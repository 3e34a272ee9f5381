"""A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) for tests and benchmarks.

Real PostgreSQL, not a fake: the ledger's locking and constraints must be exercised against
the server production uses. The cluster lives in a temporary directory, listens on loopback
only, trusts local connections, and is removed on :meth:`stop`. ``initdb`` refuses to run as
root, so as root the cluster is created and run as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from subsidyhub.netutil import free_port


def find_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise FileNotFoundError(
        f"PostgreSQL's {name} was not found on PATH or under /usr/lib/postgresql; "
        "install the server (apt-get install postgresql) or set SUBSIDYHUB_TEST_POSTGRES_URL"
    )


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="subsidyhub-pg-"))
        self.data = self.root / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        self._run(
            find_binary("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            find_binary("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        try:
            self._run(find_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _admin_statements(admin_url: str, *statements: str | Callable[[int], str]) -> None:
    """Run ``statements`` outside a transaction (as ``CREATE DATABASE`` must be); a callable
    is given the server's version number (``server_version_num``) and returns the statement."""
    import psycopg

    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        for statement in statements:
            text = statement(connection.info.server_version) if callable(statement) else statement
            connection.execute(text)


def create_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """Create a fresh database on the server of ``admin_url``; returns its URL.

    With ``template``, the database is a copy of that one (``CREATE DATABASE … TEMPLATE``):
    tests copy a database migrated once instead of migrating each. PostgreSQL refuses the copy
    while anyone is connected to the template, so dispose of its engines first.
    """

    def create(server_version: int) -> str:
        if template is None:
            return f'CREATE DATABASE "{name}"'
        # From PostgreSQL 15 the default copy writes every block to the WAL; copying the files
        # (the older way) costs the server about a quarter of that CPU for a ledger-sized
        # template, and a test run makes hundreds of copies.
        strategy = " STRATEGY FILE_COPY" if server_version >= 150000 else ""
        return f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}'

    _admin_statements(admin_url, f'DROP DATABASE IF EXISTS "{name}"', create)
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database of the server of ``admin_url`` if it exists."""
    _admin_statements(admin_url, f'DROP DATABASE IF EXISTS "{name}"')
