"""Reading the YAML files admins edit (the config, the image catalog), with errors for people.

One place turns an unreadable file or bad YAML into the caller's error type, naming the file and
the line, so ``subsidyhub.yaml`` and ``images/catalog.yaml`` report problems the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def read_yaml(source: Path, error: Callable[[str, str, str], Exception]) -> Any:
    """The parsed document; ``error(file, key, message)`` builds what is raised on failure."""
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(str(source), "", f"cannot read the file ({problem.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise error(
            str(source), where, f"not valid YAML: {getattr(problem, 'problem', problem)}"
        ) from None
