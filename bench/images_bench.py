"""Sizes and start-up of the built notebook images (issue 15's targets).

``python -m bench.images_bench`` (after ``make images``) measures, in the private engine of the
image cache:

* **on disk**: the image's size as Docker reports it (all layers, uncompressed);
* **compressed**: each layer as a registry stores it, gzip level 6 (Docker's push default),
  computed from ``docker save`` — what a node pulls;
* **CUDA in the wheels**: the installed size of the ``nvidia-*`` and ``cuda-*`` wheels, that
  is the CUDA libraries an ``nvidia/cuda:…-cudnn-runtime`` base would have brought a second
  time (pip installs them for torch either way);
* **start → JupyterLab ready**: from ``docker run`` to ``/api/status`` answering, median of
  ``--runs`` cold starts of a new container (the image already on the node).

It updates ``bench/results/images.json`` (the images measured) and prints a line each; ``images/README.md`` records a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tarfile
import time
import zlib
from pathlib import Path
from typing import IO, Any

import httpx

from subsidyhub.catalog import load_catalog
from subsidyhub.dockerd import PrivateDockerd
from subsidyhub.imagebuild import IMAGES, default_cache
from subsidyhub.netutil import free_port

RESULTS = Path(__file__).with_name("results") / "images.json"
CUDA_WHEELS = "du -sk /opt/venv/lib/python3*/site-packages/nvidia* 2>/dev/null | cut -f1"


def gzip_size(stream: IO[bytes]) -> int:
    """Bytes of ``stream`` gzip-compressed at level 6, without keeping the output."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    total = 0
    while chunk := stream.read(1 << 20):
        total += len(compressor.compress(chunk))
    return total + len(compressor.flush())


def compressed_size(engine: PrivateDockerd, reference: str, save: Path) -> int:
    """The sum of the image's layers gzip-compressed, from ``docker save``."""
    with engine.client() as client, save.open("wb") as out:
        for chunk in client.images.get(reference).save(chunk_size=1 << 20):
            out.write(chunk)
    total = 0
    with tarfile.open(save) as archive:
        for member in archive.getmembers():
            if member.isfile() and (member.name.endswith("layer.tar") or "/sha256/" in member.name):
                layer = archive.extractfile(member)
                if layer is not None and member.size > 1024:
                    total += gzip_size(layer)
    save.unlink()
    return total


def ready_seconds(engine: PrivateDockerd, reference: str) -> float:
    """From creating a container to JupyterLab answering ``/api/status``."""
    port, token = free_port(), "bench"
    command = ["jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
    command.append(f"--IdentityProvider.token={token}")
    with engine.client() as client:
        started = time.monotonic()
        container = client.containers.run(reference, command, network_mode="host", detach=True)
        try:
            while time.monotonic() - started < 120:
                try:
                    url = f"http://127.0.0.1:{port}/api/status?token={token}"
                    if httpx.get(url, timeout=2).status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            raise RuntimeError(f"{reference}: JupyterLab not ready in 120 s")
        finally:
            container.remove(force=True)


def measure(engine: PrivateDockerd, reference: str, runs: int, scratch: Path) -> dict[str, Any]:
    with engine.client() as client:
        on_disk = client.images.get(reference).attrs["Size"]
        cuda_kib = client.containers.run(
            reference, ["sh", "-c", CUDA_WHEELS], network_mode="host", remove=True
        ).decode()
    starts = [ready_seconds(engine, reference) for _ in range(runs)]
    return {
        "on_disk_bytes": on_disk,
        "compressed_bytes": compressed_size(engine, reference, scratch / "image.tar"),
        "cuda_wheels_bytes": sum(int(line) for line in cuda_kib.split()) * 1024,
        "ready_seconds": starts,
        "ready_median_seconds": statistics.median(starts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.images_bench")
    parser.add_argument("images", nargs="*", default=["base", "pytorch"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    catalog = load_catalog(IMAGES / "catalog.yaml")
    cache = default_cache()
    engine = PrivateDockerd(cache / "docker").start()
    results: dict[str, Any] = {}
    try:
        for name in args.images:
            [image] = [i for i in catalog.images if i.name == name and i.status == "current"]
            reference = catalog.reference(image)
            results[image.ref] = measure(engine, reference, args.runs, cache)
            figures = results[image.ref]
            print(
                f"{image.ref}: {figures['on_disk_bytes'] / 1e9:.2f} GB on disk, "
                f"{figures['compressed_bytes'] / 1e9:.2f} GB compressed, CUDA wheels "
                f"{figures['cuda_wheels_bytes'] / 1e9:.2f} GB, ready in "
                f"{figures['ready_median_seconds']:.1f} s (median of {args.runs})",
                flush=True,
            )
    finally:
        engine.close()
    # Merged with the file's other images, so one image can be measured again alone.
    kept = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else {}
    RESULTS.write_text(json.dumps(kept | results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
