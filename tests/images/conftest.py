"""Shared paths for the image tests: the repository's images/ folder (the catalog fixture is
in tests/conftest.py, for tests/docker too)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
