"""``SpawnException`` on every JupyterHub the plugin supports (5.5 and 6.x).

A spawn the policy refuses (no such profile, too little subsidy, no free GPU) must reach the
person with its own message and status, not as a traceback. JupyterHub 6 has
``jupyterhub.spawner.SpawnException`` for that; JupyterHub 5.5, which z2jh 4.4's hub image
ships, has no such class: there the spawn page, the progress stream and the REST API show an
``HTTPError``'s ``jupyterhub_message``. Where the real class is missing this module defines one
with its signature on top of that mechanism, so the hooks and spawners raise the same thing on
both (feature detection, not a version check).
"""

from __future__ import annotations

from tornado import web

try:
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub < 6

    class SpawnException(web.HTTPError):  # type: ignore[no-redef]
        """JupyterHub 6's ``SpawnException`` for JupyterHub 5: the message is what people see."""

        def __init__(self, message: str, *, reason: str, status_code: int = 400) -> None:
            # "%s" keeps a "%" in the message from being read as a format by tornado.
            super().__init__(status_code, "%s", message, reason=reason)
            self.message = message
            self.jupyterhub_message = message


__all__ = ["SpawnException"]
