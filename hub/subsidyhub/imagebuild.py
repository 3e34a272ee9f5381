"""Build the catalog's notebook images from reachable sources: ``make images``.

Why this and not ``docker buildx bake``: the catalog (``images/catalog.yaml``) is the one list
of images, tags, parents and labels, so the builder reads it rather than repeating it; and a
build must need nothing but the operating system image and PyPI:

* **Wheels by hash, outside the image.** Each image's ``requirements.lock`` pins every package
  with its hashes. The wheels are downloaded on the host with ``pip download
  --require-hashes`` (pip's configured indexes, mirrors included) into a cached wheelhouse,
  which a loopback HTTP server offers to the build; the Dockerfile installs with
  ``--no-index --require-hashes``. No wheel ends up in a layer, nothing unpinned is installed,
  and a changed file on an index fails the build.
* **No CUDA base image.** The PyTorch wheels bring the CUDA runtime and cuDNN, so the images
  build on a plain Debian image (``base.image`` in the catalog, pinned by digest). Where no
  registry can be reached, ``--debian SUITE`` makes that Debian image here from Debian's
  packages (``mmdebstrap``) and imports it; the Dockerfiles are the same either way.
* **Any builder.** The build needs the host network (apt, the wheelhouse on loopback) and no
  BuildKit feature, so the classic builder of any Docker engine does; ``--engine private``
  starts Debian's ``dockerd`` on the image cache (:mod:`subsidyhub.dockerd`) where none runs.
* **Up to date means skipped.** Each image is labelled with a digest of all it is built from
  (Dockerfile, lock, extension wheel, smoke tests, parent image); an image with the same label
  is not rebuilt.

The extension (``extensions/jupyterlab-subsidy``) is built into a wheel here and installed by
its hash too. Sizes and build times are printed and, with ``--report``, written as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors

import docker
from subsidyhub.catalog import Catalog, CatalogError, CatalogImage, load_catalog
from subsidyhub.dockerd import PrivateDockerd, unavailable

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
EXTENSION = ROOT / "extensions" / "jupyterlab-subsidy"
EXTENSION_SOURCES = ("package.json", "package-lock.json", "pyproject.toml", "install.json")
EXTENSION_TREES = ("src", "style", "schema", "jupyter-config", "overrides", "jupyterlab_subsidy")
SMOKE = IMAGES / "tests" / "image_smoke"
INPUTS_LABEL = "io.subsidyhub.inputs"
# Wheels for the images' Python on x86-64 glibc: every manylinux tag a wheel may carry.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
DEBIAN_PACKAGES = "ca-certificates"


class BuildError(Exception):
    """A build that cannot go on, phrased for the admin running ``make images``."""


def default_cache() -> Path:
    """Where wheels, Debian root filesystems and the private engine's data are kept."""
    configured = os.environ.get("SUBSIDYHUB_IMAGE_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "subsidyhub" / "images"


@dataclass(frozen=True)
class Built:
    """What one image came to: for the log, ``--report`` and ``images/README.md``."""

    ref: str
    reference: str
    seconds: float
    size_bytes: int
    skipped: bool


def run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed ({' '.join(command[:3])} …):\n{tail}")


def debian_rootfs(suite: str, cache: Path) -> Path:
    """A minimal Debian ``suite`` root filesystem as a tar, made with ``mmdebstrap``.

    Kept per month, the images' rebuild cadence: a month's builds share one base, and next
    month's picks up Debian's security updates.
    """
    if shutil.which("mmdebstrap") is None:
        raise BuildError("--debian needs mmdebstrap (Debian: apt-get install mmdebstrap)")
    month = datetime.now(UTC).strftime("%Y.%m")
    folder = cache / "debian"
    tar = folder / f"{suite}-{month}.tar"
    if tar.is_file():
        return tar
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{suite}-*.tar"):
        old.unlink()
    partial = folder / f"{suite}-{month}.partial.tar"  # mmdebstrap's format is the suffix
    run(
        [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={DEBIAN_PACKAGES}",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            suite,
            str(partial),
        ],
        f"mmdebstrap {suite}",
    )
    partial.rename(tar)
    return tar


def import_debian(client: docker.DockerClient, suite: str, cache: Path) -> str:
    """The Debian image made here, imported once per month's root filesystem."""
    tar = debian_rootfs(suite, cache)
    reference = f"subsidyhub-os/debian:{tar.stem}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(reference)
        return reference
    repository, tag = reference.split(":")
    client.api.import_image_from_file(
        str(tar), repository=repository, tag=tag, changes=['CMD ["bash"]']
    )
    return reference


def download_wheels(lock: Path, python: str, wheelhouse: Path) -> None:
    """Every wheel ``lock`` pins, checked against its hashes, into ``wheelhouse``."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    abi = "cp" + python.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:", "--require-hashes", "--python-version", python]
    command += ["--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    run([*command, "-r", str(lock), "-d", str(wheelhouse)], f"downloading {lock}'s wheels")


def _tree_digest(paths: list[Path], base: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def extension_digest() -> str:
    """A digest of the extension's sources (not of its built front end)."""
    sources = [EXTENSION / name for name in EXTENSION_SOURCES]
    for tree in EXTENSION_TREES:
        sources += [p for p in _files(EXTENSION / tree) if "labextension" not in p.parts]
    return _tree_digest(sources, EXTENSION)


def extension_wheel(digest: str, wheelhouse: Path, cache: Path) -> Path:
    """The jupyterlab-subsidy wheel for the sources of ``digest`` (:func:`extension_digest`),
    built once and put in the wheelhouse."""
    folder = cache / "extension" / digest[:16]
    wheels = list(folder.glob("jupyterlab_subsidy-*.whl"))
    if not wheels:
        shutil.rmtree(folder.parent, ignore_errors=True)
        folder.mkdir(parents=True)
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "-w",
                str(folder),
                str(EXTENSION),
            ],
            "building the jupyterlab-subsidy wheel",
        )
        wheels = list(folder.glob("jupyterlab_subsidy-*.whl"))
    [wheel] = wheels
    shutil.copy2(wheel, wheelhouse / wheel.name)
    return wheel


def pin_line(wheel: Path) -> str:
    """``name==version --hash=sha256:…`` for a wheel, as pip's hash-checking mode wants it."""
    name, version = wheel.name.split("-")[:2]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return f"{name.replace('_', '-')}=={version} --hash=sha256:{digest}\n"


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` as a pip ``--find-links`` page on loopback, for the build's RUN steps."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Plan:
    """One image to build: where from, with which arguments, and a digest of all of it."""

    image: CatalogImage
    reference: str
    args: dict[str, str]
    inputs: str
    # For an image on the operating system (it installs the extension): its sources' digest.
    extension: str | None


def plan(
    client: docker.DockerClient, catalog: Catalog, image: CatalogImage, base_image: str | None
) -> Plan:
    """The build arguments and the inputs digest (the revision label is not an input)."""
    assert image.build is not None
    folder = IMAGES / image.build
    parent = catalog.find(image.parent) if image.parent else None
    args = {"CATALOG_REF": image.ref, "IMAGE_NAME": image.name}
    if parent is not None:
        args["BASE_IMAGE"] = catalog.reference(parent)
    elif base_image is not None:
        args["BASE_IMAGE"] = base_image
    source = args.get("BASE_IMAGE")
    parts = [
        _tree_digest([folder / "Dockerfile", folder / "requirements.lock"], folder),
        args,
        client.images.get(source).id if source else "the Dockerfile's default",
    ]
    extension = extension_digest() if parent is None else None
    if extension is not None:
        parts += [extension, _tree_digest(_files(SMOKE), SMOKE)]
    inputs = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
    return Plan(image, catalog.reference(image), args, inputs, extension)


def up_to_date(client: docker.DockerClient, plan: Plan) -> Built | None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        existing = client.images.get(plan.reference)
        if existing.labels.get(INPUTS_LABEL) == plan.inputs:
            return Built(plan.image.ref, plan.reference, 0.0, existing.attrs["Size"], True)
    return None


def build_image(client: docker.DockerClient, plan: Plan, cache: Path, vcs_ref: str) -> Built:
    """Fetch the wheels, assemble the context (Dockerfile, lock, and for an image on the
    operating system the extension's pin and the smoke tests) and build."""
    image = plan.image
    assert image.build is not None
    folder = IMAGES / image.build
    wheelhouse = cache / "wheels"
    download_wheels(folder / "requirements.lock", image.python, wheelhouse)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="subsidyhub-image-") as directory:
        context = Path(directory)
        for name in ("Dockerfile", "requirements.lock"):
            shutil.copy2(folder / name, context / name)
        if plan.extension is not None:
            wheel = extension_wheel(plan.extension, wheelhouse, cache)
            (context / "extension.txt").write_text(pin_line(wheel))
            shutil.copytree(
                SMOKE, context / "image_smoke", ignore=shutil.ignore_patterns("__pycache__")
            )
        with serve(wheelhouse) as url:
            stream = client.api.build(
                path=str(context),
                tag=plan.reference,
                buildargs=plan.args | {"VCS_REF": vcs_ref, "WHEELHOUSE": url},
                labels={INPUTS_LABEL: plan.inputs},
                network_mode="host",
                rm=True,
                forcerm=True,
                decode=True,
            )
            log: list[str] = []
            for chunk in stream:
                if "error" in chunk:
                    tail = "\n".join("".join(log).splitlines()[-20:])
                    raise BuildError(f"{image.ref}: {chunk['error'].strip()}\n{tail}")
                log.append(chunk.get("stream", ""))
    size = client.images.get(plan.reference).attrs["Size"]
    return Built(image.ref, plan.reference, time.monotonic() - started, size, skipped=False)


def selected(catalog: Catalog, names: list[str]) -> list[CatalogImage]:
    """The current images to build, parents first; ``names`` empty means all of them."""
    buildable = [i for i in catalog.images if i.build and i.status == "current"]
    known = {i.name: i for i in buildable}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BuildError(
            f"no current image named {', '.join(unknown)}; built here: {', '.join(known)}"
        )
    wanted = {known[n].ref for n in names} if names else {i.ref for i in buildable}
    changed = True
    while changed:  # a wanted image needs its parent built too
        parents = {i.parent for i in buildable if i.ref in wanted and i.parent}
        changed = not parents <= wanted
        wanted |= parents
    ordered: list[CatalogImage] = []
    while len(ordered) < len(wanted):
        done = {i.ref for i in ordered}
        ordered += [
            i for i in buildable if i.ref in wanted and i.ref not in done
            and (i.parent is None or i.parent in done)
        ]  # fmt: skip
    return ordered


@contextlib.contextmanager
def engine(kind: str, cache: Path) -> Iterator[docker.DockerClient]:
    """The Docker engine to build in: ``env`` (DOCKER_HOST or the default socket) or
    ``private`` (Debian's dockerd on the image cache, started if none runs there)."""
    if kind == "env":
        with contextlib.closing(docker.from_env(timeout=600)) as client:
            yield client
        return
    reason = unavailable()
    if reason:
        raise BuildError(f"--engine private: {reason}")
    private = PrivateDockerd(cache / "docker").start()
    try:
        with private.client() as client:
            yield client
    finally:
        private.close()


def build(args: argparse.Namespace) -> list[Built]:
    catalog = load_catalog(args.catalog)
    images = selected(catalog, args.images)
    cache: Path = args.cache
    results = []
    with engine(args.engine, cache) as client:
        base_image = args.base_image
        if args.debian:
            base_image = import_debian(client, args.debian, cache)
        for image in images:
            step = plan(client, catalog, image, base_image)
            built = up_to_date(client, step) or build_image(client, step, cache, args.vcs_ref)
            print(
                f"{built.reference}: "
                + ("up to date" if built.skipped else f"built in {built.seconds:.0f} s")
                + f", {built.size_bytes / 1e9:.2f} GB on disk",
                flush=True,
            )
            if args.push:
                client.images.push(built.reference)
            results.append(built)
        client.images.prune(filters={"dangling": True})  # what a rebuild replaced
    return results


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m subsidyhub.imagebuild",
        description="Build the catalog's notebook images (images/README.md).",
    )
    cli.add_argument("images", nargs="*", help="Image names (default: every current image).")
    cli.add_argument("--catalog", type=Path, default=IMAGES / "catalog.yaml")
    cli.add_argument("--cache", type=Path, default=default_cache(), help="Wheels, Debian, engine.")
    cli.add_argument(
        "--engine", choices=["env", "private"], default="env",
        help="env: the Docker of DOCKER_HOST; private: Debian's dockerd on the cache.",
    )  # fmt: skip
    source = cli.add_mutually_exclusive_group()
    source.add_argument(
        "--base-image", help="Operating system image instead of the Dockerfile's pinned one."
    )
    source.add_argument(
        "--debian", metavar="SUITE",
        help="Make the operating system image here from Debian's packages (e.g. trixie).",
    )  # fmt: skip
    cli.add_argument("--vcs-ref", default="unknown", help="Commit, for the revision label.")
    cli.add_argument("--push", action="store_true", help="Push each image to the registry.")
    cli.add_argument("--report", type=Path, help="Write sizes and build times here as JSON.")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        results = build(args)
    except (BuildError, CatalogError, docker.errors.DockerException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.report:
        args.report.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
