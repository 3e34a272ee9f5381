"""The spawn form: profiles with list price, subsidised price and hours left, per project.

JupyterHub calls :func:`render_options_form` for the spawn page; the figures come from the
service (``GET users/{name}/profiles``), so the page shows exactly what admission will decide:
profiles the user may not start are disabled with the service's reason. The same choice
can be made through the REST API with ``{"profile": ..., "project": ...}`` as user options.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from subsidyhub.hubplugin.client import ServiceRefused, ServiceUnavailable, SubsidyClient
from subsidyhub.money import currency_symbol
from subsidyhub.settings import Settings

_templates = Environment(
    loader=PackageLoader("subsidyhub.hubplugin", "templates"),
    autoescape=select_autoescape(["html"]),
)


def image_labels(settings: Settings) -> dict[str, str]:
    """What the spawn page says of each profile's image, from the image catalog."""
    labels = {}
    for profile in settings.profiles:
        image = settings.catalog_image(profile)
        if image is not None:
            labels[profile.slug] = (
                f"{image.ref}: {image.description} (CUDA {image.base.cuda}, Python {image.python})"
            )
    return labels


def form_context(
    user: str, offers: dict[str, Any], images: dict[str, str] | None = None
) -> dict[str, Any]:
    """Template values from the service's answer and the image labels; pure, for tests."""
    images = images or {}
    projects = []
    for project in offers.get("projects", []):
        allowed = [p["slug"] for p in project["profiles"] if p["allowed"]]
        projects.append(
            project
            | {
                "percent": f"{Decimal(project['subsidy_rate']) * 100:.0f}",
                "default": allowed[0] if allowed else None,
                "profiles": [
                    offer | {"image": images.get(offer["slug"])} for offer in project["profiles"]
                ],
            }
        )
    return {
        "user": user,
        "projects": projects,
        "symbol": currency_symbol(offers.get("currency", "")),
    }


def render(user: str, offers: dict[str, Any], images: dict[str, str] | None = None) -> str:
    context = form_context(user, offers, images)
    return _templates.get_template("subsidy_profiles.html").render(**context)


def unavailable_notice() -> str:
    return (
        '<p class="alert alert-danger" id="sh-unavailable">The subsidy service is not reachable, so '
        "prices and balances cannot be shown and no server can be started now. Running servers "
        "are not affected. Try again in a few minutes.</p>"
    )


async def render_options_form(
    client: SubsidyClient, user: str, images: dict[str, str] | None = None
) -> str:
    try:
        offers = await client.offers(user)
    except (ServiceUnavailable, ServiceRefused):
        return unavailable_notice()
    return render(user, offers, images)


def options_from_form(formdata: dict[str, list[str]]) -> dict[str, str]:
    """Form fields (lists of strings) to user options; validation is admission's job."""
    options = {}
    for key in ("profile", "project"):
        values = formdata.get(key) or []
        if values and values[0]:
            options[key] = values[0]
    return options
