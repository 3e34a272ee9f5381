"""SubsidyHub in JupyterLab: balance, burn rate, time left and warnings where researchers work.

One package, three faces:

* the JupyterLab extension (built from ``src/`` into ``labextension/``): status bar item,
  panel, notifications;
* the server extension (:mod:`jupyterlab_subsidy.routes`) those call, which reads the subsidy
  service with the server's own token and caches it for every tab;
* notebook helpers: ``balance`` (a live ipywidgets view) and :func:`cost` (what a job would
  cost and whether the balance covers it).

Importing this package loads neither ipywidgets nor the server: the server process imports it
for the server extension, kernels for the helpers.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

    from jupyterlab_subsidy.figures import CostEstimate
    from jupyterlab_subsidy.widget import BalanceWidget

try:
    __version__ = version("jupyterlab_subsidy")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "balance", "cost"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyterlab-subsidy"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyterlab_subsidy"}]


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    from jupyterlab_subsidy.routes import setup_handlers

    state = setup_handlers(server_app)
    # The lab is built into the centre's image and researchers cannot rebuild it, so JupyterLab's
    # build check serves nobody: at each page load it runs `yarn config` in node (~0.3 s of the
    # shared node's CPU) to offer a "Build recommended" dialog. The values are assigned, not
    # defaulted, so they hold whichever of JupyterLab and this extension loads first.
    page_config = server_app.web_app.settings.setdefault("page_config_data", {})
    page_config.update(buildAvailable=False, buildCheck=False)
    try:
        where = state.locate().url
    except Exception as problem:  # not configured: the handlers answer 503 with the reason
        where = f"nowhere ({problem})"
    server_app.log.info("jupyterlab_subsidy: reading the subsidy service at %s", where)


class _BalanceShortcut:
    """``balance`` shown in a cell displays a live widget; ``balance(...)`` returns one."""

    def __call__(
        self, project: str | None = None, refresh_seconds: float = 10.0, live_minutes: float = 60.0
    ) -> BalanceWidget:
        """A live balance widget for ``project`` (default: this server's project)."""
        from jupyterlab_subsidy.kernel import KernelClient
        from jupyterlab_subsidy.widget import BalanceWidget

        return BalanceWidget(
            KernelClient.from_environment(),
            project=project,
            refresh_seconds=refresh_seconds,
            live_minutes=live_minutes,
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self())

    def __repr__(self) -> str:
        return "jupyterlab_subsidy.balance: show it in a cell, or call balance(project=...)"


balance = _BalanceShortcut()


def cost(profile: str, hours: Any = 1, project: str | None = None) -> CostEstimate:
    """What ``hours`` of ``profile`` would cost now (list, subsidy, co-pay) and if it is covered.

    ``project`` defaults to this server's project. Rates are the service's current prices for
    the project, as the spawn page shows them; amounts are exact ``Decimal`` values. Raises
    :class:`~jupyterlab_subsidy.kernel.SubsidyError` with the service's message when it cannot
    answer, and ``ValueError`` listing the choices for an unknown profile or project.
    """
    from jupyterlab_subsidy.kernel import KernelClient

    return KernelClient.from_environment().cost(profile, hours, project)
