"""``subsidyhub up`` refuses to start servers it cannot run, with the install command to fix it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from subsidyhub.launcher import LaunchError, require_jupyterlab, second_shell_exports
from subsidyhub.settings import Settings


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


def test_up_with_another_data_dir_prints_the_export_a_second_shell_needs(tmp_path: Path) -> None:
    settings = Settings()
    elsewhere = tmp_path / "my data"
    assert second_shell_exports(elsewhere, settings, tmp_path) == [
        f"export SUBSIDYHUB_DATA_DIR='{elsewhere}'"
    ]
    # The default a command run here would use anyway needs nothing.
    assert second_shell_exports(tmp_path / ".subsidyhub", settings, tmp_path) == []
    configured = Settings(data_dir=Path("state"))
    assert second_shell_exports(tmp_path / "state", configured, tmp_path) == []
    assert second_shell_exports(tmp_path / ".subsidyhub", configured, tmp_path) != []
