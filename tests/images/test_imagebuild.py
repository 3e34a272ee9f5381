"""The image builder's parts that need no engine: order, pins, the wheelhouse, its errors.

The builds themselves are tested by running them: ``make test`` runs ``make images`` and
tests/images/test_built_images.py runs what it built.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from subsidyhub.catalog import Catalog
from subsidyhub.imagebuild import BuildError, main, pin_line, selected, serve


def test_an_unknown_image_is_refused_with_the_choices(catalog: Catalog) -> None:
    with pytest.raises(
        BuildError, match=r"no current image named cuda; built here: base, pytorch, edge"
    ):
        selected(catalog, ["cuda"])


def test_a_wheel_is_pinned_by_name_version_and_hash(tmp_path: Path) -> None:
    wheel = tmp_path / "jupyterlab_subsidy-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a zip")
    digest = hashlib.sha256(b"not really a zip").hexdigest()
    assert pin_line(wheel) == f"jupyterlab-subsidy==0.1.0 --hash=sha256:{digest}\n"


def test_the_wheelhouse_is_a_find_links_page_on_loopback(tmp_path: Path) -> None:
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"wheel bytes")
    with serve(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        page = httpx.get(url, timeout=10)
        assert 'href="six-1.17.0-py2.py3-none-any.whl"' in page.text
        assert (
            httpx.get(url + "six-1.17.0-py2.py3-none-any.whl", timeout=10).content == b"wheel bytes"
        )
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=2)


def test_an_unreachable_engine_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    assert main(["--engine", "env", "--cache", str(tmp_path), "base"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1, error
