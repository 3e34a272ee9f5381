"""A container root filesystem with this machine's Python and JupyterHub's single-user server.

Why: the Docker integration tests need an image that runs ``jupyterhub-singleuser``, and no base
image can be pulled here (no registry). So the image is built from local files, the way
``docker import`` builds one from any root filesystem: the running interpreter (binary, standard
library, ``lib-dynload``), the installed distributions that ``jupyterhub`` and ``jupyter_server``
need (the closure of their requirements, read from the installed metadata), a console script per
entry point, the shared libraries ``ldd`` says all of that loads, and a non-root user. The result
is one tar file (about 250 MB, a few seconds to write).

Layout in the image: Python under :data:`PYTHON_HOME` (``PYTHONHOME`` and ``LD_LIBRARY_PATH``
point there, so the interpreter does not depend on where it was built), system libraries at the
paths ``ldd`` resolved them to, ``/home/jovyan`` owned by the user.
"""

from __future__ import annotations

import importlib.metadata as metadata
import io
import re
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYTHON_HOME = PurePosixPath("/opt/python")
USER = "jovyan"
UID = 1000
GID = 100
HOME = PurePosixPath("/home") / USER
# Parts of the standard library a server never imports.
STDLIB_SKIPPED = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages"}
)
_LDD_PATH = re.compile(r"(?:=>\s+)?(/\S+)\s+\(0x")


def image_config() -> list[str]:
    """``docker import --change`` lines that make the rootfs run as the user, with its Python."""
    return [
        f"ENV PYTHONHOME={PYTHON_HOME}",
        f"ENV LD_LIBRARY_PATH={PYTHON_HOME}/lib",
        f"ENV PATH={PYTHON_HOME}/bin:/usr/bin:/bin",
        f"ENV HOME={HOME}",
        f"USER {UID}:{GID}",
        f"WORKDIR {HOME}",
    ]


def distribution_closure(roots: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, without extras, themselves included."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(roots)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        distribution = metadata.distribution(name)
        found[name] = distribution
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted(found.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def _site_packages_files(distribution: metadata.Distribution) -> Iterator[tuple[Path, str]]:
    """(host file, path relative to site-packages) of a distribution, scripts outside skipped."""
    base = Path(str(distribution.locate_file(""))).resolve()
    for entry in distribution.files or []:
        source = Path(str(distribution.locate_file(entry))).resolve()
        if source.is_file() and source.is_relative_to(base):
            yield source, source.relative_to(base).as_posix()


def _stdlib_files(stdlib: Path) -> Iterator[tuple[Path, str]]:
    for source in sorted(stdlib.rglob("*")):
        relative = source.relative_to(stdlib)
        skipped = relative.parts[0] in STDLIB_SKIPPED or source.name.startswith("_tkinter")
        if skipped or not source.is_file():
            continue
        yield source, relative.as_posix()


def shared_libraries(binaries: Iterable[Path]) -> set[Path]:
    """Every shared library the dynamic loader resolves for ``binaries`` (one ``ldd`` run)."""
    paths = [str(path) for path in binaries]
    if not paths:
        return set()
    listing = subprocess.run(
        ["ldd", *paths], capture_output=True, text=True, check=False
    ).stdout  # exits 1 when one of them is not dynamic: its section just says so
    return {Path(match.group(1)) for match in _LDD_PATH.finditer(listing)}


def _console_script(module: str, attribute: str) -> bytes:
    call = attribute.split(".")[0]
    return (
        f"#!{PYTHON_HOME}/bin/python3\nimport sys\nfrom {module} import {call}\n"
        f"sys.exit({attribute}())\n"
    ).encode()


class _Tar:
    """A tar of a root filesystem: root-owned, readable by all, parent directories added once."""

    def __init__(self, archive: tarfile.TarFile) -> None:
        self._tar = archive
        self._directories: set[PurePosixPath] = set()

    def directory(self, path: PurePosixPath, mode: int = 0o755, uid: int = 0) -> None:
        for parent in reversed(path.parents[:-1]):
            self.directory(parent)
        if path in self._directories:
            return
        self._directories.add(path)
        info = tarfile.TarInfo(str(path).lstrip("/"))
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, GID if uid else 0
        self._tar.addfile(info)

    def data(self, path: PurePosixPath, content: bytes, mode: int = 0o644) -> None:
        self.directory(path.parent)
        info = tarfile.TarInfo(str(path).lstrip("/"))
        info.size, info.mode = len(content), mode
        self._tar.addfile(info, io.BytesIO(content))

    def file(self, path: PurePosixPath, source: Path) -> None:
        self.directory(path.parent)
        info = tarfile.TarInfo(str(path).lstrip("/"))
        stat = source.stat()
        info.size, info.mtime = stat.st_size, int(stat.st_mtime)
        info.mode = 0o755 if stat.st_mode & 0o111 else 0o644
        with source.open("rb") as handle:
            self._tar.addfile(info, handle)


def write_singleuser_rootfs(
    path: Path, roots: Iterable[str] = ("jupyterhub", "jupyter_server")
) -> int:
    """Write the root filesystem tar to ``path``; returns the number of files in it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    interpreter = Path(sys._base_executable).resolve()  # the real binary behind any venv
    image_lib = PYTHON_HOME / "lib" / version
    files: list[tuple[PurePosixPath, Path]] = [(PYTHON_HOME / "bin" / "python3", interpreter)]
    files += [(image_lib / relative, source) for source, relative in _stdlib_files(stdlib)]
    scripts: dict[str, tuple[str, str]] = {}
    for distribution in distribution_closure(roots):
        files += [
            (image_lib / "site-packages" / relative, source)
            for source, relative in _site_packages_files(distribution)
        ]
        for entry in distribution.entry_points.select(group="console_scripts"):
            scripts[entry.name] = (entry.module, entry.attr)
    for library in shared_libraries(
        [interpreter, *(source for _, source in files if ".so" in source.name)]
    ):
        real = library.resolve()
        if library.name.startswith("libpython"):  # beside the image's interpreter
            files.append((PYTHON_HOME / "lib" / library.name, real))
        elif not any(real.is_relative_to(Path(p)) for p in sys.path if p):
            files.append((PurePosixPath(library), real))
    with tarfile.open(path, "w") as archive:
        tar = _Tar(archive)
        tar.directory(PurePosixPath("/tmp"), mode=0o1777)
        tar.directory(HOME, uid=UID)
        tar.data(
            PurePosixPath("/etc/passwd"),
            f"root:x:0:0:root:/root:/bin/sh\n{USER}:x:{UID}:{GID}::{HOME}:/bin/sh\n".encode(),
        )
        tar.data(PurePosixPath("/etc/group"), f"root:x:0:\nusers:x:{GID}:{USER}\n".encode())
        for target, source in sorted(set(files)):
            tar.file(target, source)
        for name, (module, attribute) in sorted(scripts.items()):
            tar.data(PYTHON_HOME / "bin" / name, _console_script(module, attribute), mode=0o755)
    return len(files) + len(scripts)
