"""``subsidyhub up`` refuses to start servers it cannot run, with the install command to fix it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from subsidyhub.launcher import LaunchError, require_jupyterlab


def test_an_interpreter_without_jupyterlab_is_refused_with_the_fix(tmp_path: Path) -> None:
    # A fresh virtualenv without site packages: a Python that has no JupyterLab.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path)], check=True)
    python = str(tmp_path / "bin" / "python")
    with pytest.raises(LaunchError) as refused:
        require_jupyterlab(python)
    assert "pip install 'subsidyhub[local]'" in refused.value.args[0]
    assert python in refused.value.args[0]


def test_this_interpreter_has_jupyterlab() -> None:
    require_jupyterlab(sys.executable)  # the dev install has the local extra
