"""``subsidyhub kubernetes``: values for the upstream z2jh chart derived from subsidyhub.yaml.

The overlay ``helm/jupyterhub-values.yaml`` is static; what depends on a centre's profiles —
which catalog images to pre-pull onto user nodes, and the GPU tolerations the pullers need to
reach GPU nodes — is printed here, to be passed as one more ``-f`` file to ``helm upgrade``.
"""

from __future__ import annotations

import typer
import yaml

from subsidyhub.cli.context import Invocation
from subsidyhub.hubplugin.kubernetes import prepuller_values

app = typer.Typer(help="Values for the z2jh chart, from the config.", no_args_is_help=True)


@app.command("prepuller-values")
def prepuller(ctx: typer.Context) -> None:
    """Print z2jh prePuller values: every catalog image the profiles use, with GPU tolerations."""
    invocation: Invocation = ctx.obj
    typer.echo(yaml.safe_dump(prepuller_values(invocation.settings), sort_keys=False), nl=False)
