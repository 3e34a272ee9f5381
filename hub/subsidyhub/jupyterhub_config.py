"""The embedded default JupyterHub config, driven by ``subsidyhub.yaml``.

``subsidyhub up`` runs ``jupyterhub -f`` on this file and passes where things go through
``SUBSIDYHUB_*`` environment variables (see :mod:`subsidyhub.launcher`). It gives a complete
single-machine platform: SQLite, the npm configurable-http-proxy, the subsidy service as a
managed service, local processes with exclusive GPUs, and a shared-password login for the demo.
"""

# ruff: noqa: F821  (``c`` is injected by JupyterHub when it loads this file)
from __future__ import annotations

import os

from subsidyhub.launcher import apply_embedded_config

apply_embedded_config(c, os.environ)  # type: ignore[name-defined]
