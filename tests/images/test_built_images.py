"""The built notebook images, run in a real Docker engine: smoke tests, user, init, the lab.

Real components: the images that ``make images`` built from Debian's packages and PyPI
(:mod:`subsidyhub.imagebuild`), in the private ``dockerd`` of the image cache; containers on
the host network. There is no GPU here, so the smoke tests take their CPU fallback and say
"no GPU"; on a GPU node the same command with ``--require-gpu`` makes that a failure
(images/README.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from subsidyhub.catalog import Catalog
from subsidyhub.dockerd import PrivateDockerd
from subsidyhub.imagebuild import default_cache
from subsidyhub.netutil import free_port
from tests.images.conftest import built_reference

pytestmark = pytest.mark.slow

PREFIX = "subsidyhub-test-image"


def run(engine: PrivateDockerd, image: str, *command: str, code: int = 0, **options: object) -> str:
    """Run ``command`` in a new container of ``image``, which must exit with ``code``; its
    output (stdout and stderr). The container is removed before this returns."""
    with engine.client() as client:
        container = client.containers.run(
            image, list(command), network_mode="host", detach=True, **options
        )
        try:
            status = container.wait(timeout=300)["StatusCode"]
            output: str = container.logs().decode()
        finally:
            container.remove(force=True)
    assert status == code, f"{' '.join(command)} exited {status}: {output[-2000:]}"
    return output


def smoke(
    engine: PrivateDockerd, image: str, *args: str, code: int = 0
) -> dict[str, dict[str, str]]:
    """``python -m image_smoke --json`` in ``image``, exiting with ``code``: results by check."""
    output = run(engine, image, "python", "-m", "image_smoke", "--json", *args, code=code)
    # Other lines are libraries' warnings on stderr.
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {r["check"]: r for r in lines}


@pytest.fixture(scope="module", autouse=True)
def no_leftovers(image_engine: PrivateDockerd) -> Iterator[None]:
    """The engine is kept between runs: remove what an interrupted run left, before and after."""

    def clean() -> None:
        with image_engine.client() as client:
            for container in client.containers.list(all=True, filters={"name": PREFIX}):
                container.remove(force=True)
            for volume in client.volumes.list(filters={"name": PREFIX}):
                # A container removed with `run(remove=True)` may still hold it for a moment.
                for user in client.containers.list(all=True, filters={"volume": volume.name}):
                    user.remove(force=True)
                volume.remove(force=True)

    clean()
    yield
    clean()


@pytest.mark.parametrize("name", ["base", "pytorch", "edge"])
def test_smoke_checks_pass_in_the_image(
    image_engine: PrivateDockerd, catalog: Catalog, name: str
) -> None:
    results = smoke(image_engine, built_reference(image_engine, catalog, name))
    expected = {
        "base": {"lab", "gpu"},
        "pytorch": {"lab", "gpu", "matmul", "train"},
        "edge": {"lab", "gpu", "matmul", "train", "onnx"},
    }[name]
    assert set(results) == expected, results
    assert "jupyterlab-subsidy v" in results["lab"]["detail"]
    assert results["gpu"]["status"] == "skip" and "no GPU" in results["gpu"]["detail"]
    for check in expected - {"lab", "gpu"}:
        assert (results[check]["status"], results[check]["device"]) == ("pass", "cpu")
        assert "CPU fallback (no GPU" in results[check]["detail"]
    if "matmul" in expected:
        throughput = results["matmul"]["detail"].removeprefix("bfloat16 256×256×3: ")
        assert float(throughput.split(" TFLOP/s")[0]) > 0, results["matmul"]


def test_require_gpu_turns_the_cpu_fallback_into_a_failure(
    image_engine: PrivateDockerd, catalog: Catalog
) -> None:
    image = built_reference(image_engine, catalog, "pytorch")
    results = smoke(image_engine, image, "--checks", "gpu,matmul", "--require-gpu", code=1)
    assert {r["status"] for r in results.values()} == {"fail"}
    assert results["gpu"]["detail"].startswith("--require-gpu: no GPU")


def test_a_missing_package_fails_its_check(image_engine: PrivateDockerd, catalog: Catalog) -> None:
    # The base image has no torch: the matmul check must fail, not skip.
    base = built_reference(image_engine, catalog, "base")
    results = smoke(image_engine, base, "--checks", "matmul", code=1)
    assert (results["matmul"]["status"], results["matmul"]["detail"]) == (
        "fail",
        "missing package: torch",
    )


def test_the_pytorch_wheels_bring_cuda_13_and_cudnn(
    image_engine: PrivateDockerd, catalog: Catalog
) -> None:
    """The CUDA runtime and cuDNN come from the wheels, as the catalog says (no NVIDIA base)."""
    [image] = [i for i in catalog.images if i.name == "pytorch" and i.status == "current"]
    script = (
        "import torch, json; print(json.dumps([torch.__version__, torch.version.cuda, "
        "torch.backends.cudnn.version()]))"
    )
    version, cuda, cudnn = json.loads(
        run(image_engine, built_reference(image_engine, catalog, "pytorch"), "python", "-c", script)
    )
    assert version.startswith(image.packages["torch"])
    assert cuda.startswith(f"{image.cuda}")
    assert str(cudnn).startswith(f"{image.cudnn}")


def test_runs_as_jovyan_under_tini(image_engine: PrivateDockerd, catalog: Catalog) -> None:
    image = built_reference(image_engine, catalog, "base")
    output = run(image_engine, image, "sh", "-c", "id -u; id -g; cat /proc/1/comm; echo $HOME")
    assert output.split() == ["1000", "100", "tini", "/home/jovyan"]
    with image_engine.client() as client:
        config = client.images.get(image).attrs["Config"]
    assert config["User"] == "1000:100"
    assert config["Entrypoint"] == ["tini", "-g", "--"]
    assert config["Env"].count("NVIDIA_DRIVER_CAPABILITIES=compute,utility") == 1


def test_pip_install_lands_in_the_home_volume_and_survives_a_restart(
    image_engine: PrivateDockerd, catalog: Catalog
) -> None:
    """A user's ``pip install`` goes to ~/.local on the home volume: a new container (a server
    restart) still imports it. The wheel comes from the build's wheelhouse (the PyTorch image's
    mpmath, not in the base image), so no index is needed."""
    image = built_reference(image_engine, catalog, "base")
    wheelhouse = default_cache() / "wheels"
    [wheel] = sorted(wheelhouse.glob("mpmath-*.whl"))[-1:] or pytest.fail(
        f"no mpmath in {wheelhouse}"
    )
    home = {f"{PREFIX}-home": {"bind": "/home/jovyan", "mode": "rw"}}
    mounts = home | {str(wheelhouse): {"bind": "/wheels", "mode": "ro"}}
    installed = run(
        image_engine, image, "pip", "install", "--no-index", f"/wheels/{wheel.name}", volumes=mounts
    )
    assert "Successfully installed mpmath" in installed
    where = run(
        image_engine, image, "python", "-c", "import mpmath; print(mpmath.__file__)", volumes=home
    )
    assert where.startswith("/home/jovyan/.local/lib/python"), where
    # The image's own environment is not the user's to change.
    refused = run(
        image_engine, image, "sh", "-c", "test -w /opt/venv/bin && echo writable || echo read-only"
    )
    assert refused.strip() == "read-only"


def test_jupyterlab_starts_with_the_subsidy_extension(
    image_engine: PrivateDockerd, catalog: Catalog, tmp_path: Path
) -> None:
    image = built_reference(image_engine, catalog, "pytorch")
    port, token = free_port(), "image-test-token"
    command = ["jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
    command.append(f"--IdentityProvider.token={token}")
    with image_engine.client() as client:
        container = client.containers.run(
            image, command, name=f"{PREFIX}-lab", network_mode="host", detach=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5)
                if status.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, container.logs(tail=30).decode()
            time.sleep(0.5)
        page = httpx.get(f"http://127.0.0.1:{port}/lab?token={token}", timeout=30)
        assert page.status_code == 200
        assert '"name": "jupyterlab-subsidy"' in page.text or '"jupyterlab-subsidy"' in page.text
        # The server side is loaded too: its route answers (no hub here, so it says so).
        route = httpx.get(f"http://127.0.0.1:{port}/subsidy/me?token={token}", timeout=30)
        assert route.status_code != 404, route.text
    finally:
        container.remove(force=True)
