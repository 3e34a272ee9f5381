"""Rendering the two charts a centre installs: z2jh (unmodified, with our overlay) and subsidyhub.

Both go through the real ``helm template``; z2jh comes from ``SUBSIDYHUB_Z2JH_CHART``
(tests/upstream.py). The releases and namespace are those of docs/deploy-kubernetes.md: z2jh as
``jhub`` and subsidyhub as ``subsidyhub``, both in namespace ``jhub``.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.upstream import ROOT, z2jh_chart

CHART = ROOT / "helm" / "subsidyhub"
OVERLAY = ROOT / "helm" / "jupyterhub-values.yaml"
NAMESPACE = "jhub"
JHUB_RELEASE = "jhub"
SUBSIDYHUB_RELEASE = "subsidyhub"
# What the subsidyhub chart needs besides its defaults: the ledger database.
SUBSIDYHUB_REQUIRED = ("--set", "secret.databaseUrl=postgresql+psycopg://subsidyhub@postgres/s")

Doc = dict[str, Any]


def helm_template(helm: Path, release: str, chart: Path, *args: str) -> list[Doc]:
    """``helm template`` → the rendered documents; fails the test with helm's message."""
    result = subprocess.run(
        [str(helm), "template", release, str(chart), "--namespace", NAMESPACE, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"helm template {chart.name} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_z2jh(helm: Path, *args: str, overlay: Path = OVERLAY) -> list[Doc]:
    """The upstream z2jh chart with the overlay first, then ``args`` (later values win)."""
    return helm_template(helm, JHUB_RELEASE, z2jh_chart(), "-f", str(overlay), *args)


def render_subsidyhub(helm: Path, *args: str) -> list[Doc]:
    return helm_template(helm, SUBSIDYHUB_RELEASE, CHART, *SUBSIDYHUB_REQUIRED, *args)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    names = sorted(d["metadata"]["name"] for d in docs if d["kind"] == kind)
    raise AssertionError(f"no {kind}/{name} rendered; {kind}s: {', '.join(names) or 'none'}")


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def secret_data(secret: Doc) -> dict[str, str]:
    """A rendered Secret's keys, decoded (``data`` is base64; ``stringData`` is plain)."""
    decoded = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return decoded | dict(secret.get("stringData") or {})
