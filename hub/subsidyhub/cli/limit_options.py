"""Command-line options for quotas and limits, made from their declarations.

``quota set``, ``member add`` and ``course create`` each take some of the limits of
:mod:`subsidyhub.limits`. :func:`with_limit_options` gives a command one ``--<name>`` option per
limit (the declaration's name with dashes, its help, "or 'none'"), plus each old spelling as a
hidden option that still works and says what replaced it; the values given reach the command
as one ``quota`` mapping, which the ledger checks against the same declarations. So a new kind
of limit appears on these commands without touching them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from subsidyhub.limits import UNLIMITED, Limit

METAVAR = {"count": "N", "hours": "HOURS", "names": "A,B"}


def _option(limit: Limit, none_means: str) -> Any:
    extra = " An empty value '' allows none." if limit.kind == "names" else ""
    return typer.Option(
        limit.flag,
        metavar=METAVAR[limit.kind],
        help=f"{limit.help} '{UNLIMITED}': {none_means}.{extra}",
        show_default=False,
    )


def _old_option(flag: str, limit: Limit) -> Any:
    return typer.Option(flag, hidden=True, help=f"Old spelling of {limit.flag}.")


def with_limit_options(
    limits: tuple[Limit, ...], command: str, none_means: str = "no limit"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add an option per limit to a typer command that takes ``quota: dict[str, str]``;
    ``none_means`` says what the word ``none`` does on this command."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(function, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "quota"]
        added: list[inspect.Parameter] = []
        old: dict[str, tuple[str, Limit]] = {}
        for limit in limits:
            added.append(
                inspect.Parameter(
                    limit.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[str | None, _option(limit, none_means)],
                )
            )
            for where, flag in limit.old_flags:
                if where == command:
                    name = "old_" + flag.lstrip("-").replace("-", "_")
                    old[name] = (flag, limit)
                    added.append(
                        inspect.Parameter(
                            name,
                            inspect.Parameter.KEYWORD_ONLY,
                            default=None,
                            annotation=Annotated[str | None, _old_option(flag, limit)],
                        )
                    )

        @functools.wraps(function)
        def command_function(*args: Any, **kwargs: Any) -> Any:
            quota: dict[str, str] = {}
            for name, (flag, limit) in old.items():
                value = kwargs.pop(name)
                if value is not None:
                    typer.echo(f"note: {flag} is now {limit.flag}", err=True)
                    quota[limit.name] = value
            for limit in limits:
                value = kwargs.pop(limit.name)
                if value is not None:
                    quota[limit.name] = value
            return function(*args, quota=quota, **kwargs)

        parameters = [*own, *added]
        command_function.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        command_function.__annotations__ = {p.name: p.annotation for p in parameters} | {
            "return": signature.return_annotation
        }
        return command_function

    return decorate
