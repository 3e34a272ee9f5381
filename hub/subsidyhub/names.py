"""The names by which the hub and the subsidy service know each other: service, roles, scopes.

Why one module: the hub plugin registers the service and grants these scopes, the service
checks them on every request, and the test hub must grant exactly what production grants. A
name spelled twice drifts (a test hub once lacked a scope production has), so every module
imports these instead of writing them.
"""

from __future__ import annotations

# The JupyterHub service, and where the hub's proxy serves it.
SERVICE_NAME = "subsidy"
SERVICE_PREFIX = f"/services/{SERVICE_NAME}/"
API_PATH = "api/v1"  # under SERVICE_PREFIX
# JupyterHub's OAuth client id for a service (``service-<name>``), which the admin page signs in as.
OAUTH_CLIENT_ID = f"service-{SERVICE_NAME}"

# Set by the hub plugin in a managed service's environment only: the hub's process id, so the
# service ends with the hub that started it (service/lifeline.py).
HUB_PID_ENV = "SUBSIDYHUB_HUB_PID"

# Reaching the service through the proxy, and administering it.
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
ADMIN_SCOPE = "custom:subsidy:admin"
# A hub admin's token counts as admin only when it carries admin power; a narrowly scoped
# token (a single-user server's, say) of a hub admin is treated as that user's.
HUB_ADMIN_POWER_SCOPE = "admin:users"

# The roles SubsidyHub loads: the service's own, and the centre admins' who are not hub admins.
SERVICE_ROLE = "subsidy-service"
ADMINS_ROLE = "subsidy-admins"
