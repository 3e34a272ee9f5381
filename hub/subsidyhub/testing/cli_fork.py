"""``subsidyhub`` command lines in processes of their own, without the CLI's imports each time.

Why: tests set a running stack's ledger up with ``subsidyhub admin``, run as a process of its
own beside the hub and the service, as an administrator would run it. A new interpreter spends
about a second importing the CLI (JupyterHub's spawner, Alembic, SQLAlchemy) before the command
does anything, and two dozen such commands cost the suite half a minute. :class:`CliForkServer`
starts one interpreter that imports the CLI once (``python -m subsidyhub.testing.cli_fork``)
and forks a child per command line: each command still runs in a fresh process, with exactly
the environment it is given, through the console script's entry point
(:func:`subsidyhub.cli.main`); stdout and stderr come back as a
:class:`subprocess.CompletedProcess` would carry them. Linux and macOS (``os.fork``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class CliForkServer:
    """One forking ``subsidyhub`` interpreter, started at the first command; :meth:`close`
    stops it (a later command starts another)."""

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    def _server(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [self._python, "-m", "subsidyhub.testing.cli_fork"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,  # so a timeout ends the server and its child at once
            )
        return self._process

    def run(
        self, args: Sequence[str], *, env: Mapping[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """``subsidyhub ARGS`` in a child process with the environment ``env``."""
        command = ["subsidyhub", *args]
        with self._lock, tempfile.TemporaryDirectory(prefix="subsidyhub-cli-") as folder:
            server = self._server()
            assert server.stdin is not None and server.stdout is not None
            out, err = Path(folder, "stdout"), Path(folder, "stderr")
            request = {"args": list(args), "env": dict(env), "stdout": str(out), "stderr": str(err)}
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            if not select.select([server.stdout], [], [], timeout)[0]:
                self.close()
                raise subprocess.TimeoutExpired(command, timeout)
            reply = server.stdout.readline()
            if not reply:
                raise RuntimeError(f"the CLI fork server exited with {server.wait()}")
            return subprocess.CompletedProcess(
                command,
                json.loads(reply)["exit_code"],
                out.read_text(encoding="utf-8"),
                err.read_text(encoding="utf-8"),
            )

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the server's loop ends with its input
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:  # a command hangs: end it and the server together
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _exit_code(code: object) -> int:
    """The status ``sys.exit(code)`` gives a process (a message is printed, as Python does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _run_child(request: dict[str, Any]) -> None:
    """In the forked child: the command line as the console script runs it; never returns."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
            (2, request["stderr"], os.O_WRONLY | os.O_CREAT),
        ):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = ["subsidyhub", *request["args"]]
        from subsidyhub.cli import main

        try:
            main()
            code = 0
        except SystemExit as done:
            code = _exit_code(done.code)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """Read one JSON request a line; fork a child for it; answer its exit code, one a line."""
    import subsidyhub.cli  # noqa: F401  (what every command would import: done once, here)

    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(request)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit_code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
