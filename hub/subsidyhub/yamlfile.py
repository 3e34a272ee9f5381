"""Reading the YAML files admins edit (the config, the image catalog), with errors for people.

One place turns an unreadable file or bad YAML into the caller's error type, naming the file and
the line, so ``subsidyhub.yaml``, ``images/catalog.yaml`` and an application file report
problems the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


class LiteralLoader(yaml.SafeLoader):
    """Safe YAML whose scalars stay the text written: only ``null`` (``~`` or nothing) is
    resolved, so ``amount: 010`` is "010", not 8, and ``starts: 2027-01-01`` a string. For
    files whose values are parsed by the ledger's own rules (an application's amounts)."""


LiteralLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml(
    source: Path,
    error: Callable[[str, str, str], Exception],
    loader: type[yaml.SafeLoader] = yaml.SafeLoader,
) -> Any:
    """The parsed document; ``error(file, key, message)`` builds what is raised on failure."""
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(str(source), "", f"cannot read the file ({problem.strerror})") from None
    except UnicodeDecodeError:
        raise error(str(source), "", "is not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise error(
            str(source), where, f"not valid YAML: {getattr(problem, 'problem', problem)}"
        ) from None
