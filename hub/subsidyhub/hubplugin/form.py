"""The spawn form: profiles with list price, subsidised price and hours left, per project.

JupyterHub calls :func:`render_options_form` for the spawn page; the figures come from the
service (``GET users/{name}/profiles``), so the page shows exactly what admission will decide:
profiles the user may not start are disabled with the service's reason. What the service
cannot know, whether this host has the GPUs a profile needs free now, comes from the spawner's
GPU pool and disables the profile too, with a sentence for the person (never a config key).
The first profile that can start is checked; when none can, the Start button is disabled with
a sentence why. A hub admin in no project gets a pointer to the admin page instead of a form.
The same choice can be made through the REST API with ``{"profile": ..., "project": ...}``
as user options.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from subsidyhub.hubplugin.client import ServiceRefused, ServiceUnavailable, SubsidyClient
from subsidyhub.money import format_money, parse_amount
from subsidyhub.names import SERVICE_PREFIX
from subsidyhub.settings import Settings
from subsidyhub.timeutil import clock_time, format_duration, to_ms

_templates = Environment(
    loader=PackageLoader("subsidyhub.hubplugin", "templates"),
    autoescape=select_autoescape(["html"]),
)
_templates.filters["duration"] = lambda seconds: format_duration(seconds * 1000)


def _money(amount: str, currency: str) -> str:
    """A decimal string from the service as people read it ("HK$499.96"), by the one rule
    of :func:`subsidyhub.money.format_money`: never more decimals than the currency has."""
    return format_money(parse_amount(amount, allow_negative=True), currency)


_templates.filters["money"] = _money


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _until(moment: str | None) -> str:
    """An ISO instant from the service as a wait people read: ``now``, ``in ~20 m``."""
    if moment is None:
        return "unknown"
    ms = to_ms(datetime.fromisoformat(moment)) - _now_ms()
    return "now" if ms < 60_000 else f"in ~{format_duration(ms)}"


_templates.filters["until"] = _until
_templates.filters["clock"] = lambda moment: clock_time(
    to_ms(datetime.fromisoformat(moment)), _now_ms()
)

# Set on the form when the Start button must be disabled (spawn.html looks for it).
NOT_STARTABLE = 'data-sh-startable="no"'

# (gpu_count, gpu_type) → None, or (reason, message) why this host cannot give them now.
GpuShortfall = Callable[[int, str | None], tuple[str, str] | None]


def image_labels(settings: Settings) -> dict[str, str]:
    """What the spawn page says of each profile's image, from the image catalog."""
    labels = {}
    for profile in settings.profiles:
        image = settings.catalog_image(profile)
        if image is not None:
            labels[profile.slug] = (
                f"{image.ref}: {image.description} (CUDA {image.cuda}, Python {image.python})"
            )
    return labels


def form_context(
    user: str,
    offers: dict[str, Any],
    images: dict[str, str] | None = None,
    shortfall: GpuShortfall | None = None,
    server_name: str = "",
) -> dict[str, Any]:
    """Template values from the service's answer, the image labels and the host's GPUs; pure
    given ``shortfall``, for tests. A profile the policy allows but the host cannot give its
    GPUs now is disabled with the host's reason; the policy's refusal, which the person can
    act on, wins when there are both."""
    images = images or {}
    projects = []
    for project in offers.get("projects", []):
        profiles = []
        for offer in project["profiles"]:
            offer = offer | {"image": images.get(offer["slug"])}
            missing = shortfall(offer["gpu_count"], offer["gpu_type"]) if shortfall else None
            if offer["allowed"] and offer["gpu_count"] and missing is not None:
                offer |= {"allowed": False, "reason": missing[0], "message": missing[1]}
            # Every rule but a free GPU admits it: it may join the queue for one.
            offer["queue"] = offer.get("reason") == "gpus_busy"
            profiles.append(offer)
        allowed = [p["slug"] for p in profiles if p["allowed"]]
        allowed += [p["slug"] for p in profiles if p["queue"]]
        projects.append(
            project
            | {
                "percent": f"{Decimal(project['subsidy_rate']) * 100:.0f}",
                "manager": project.get("role") == "manager",
                "default": allowed[0] if allowed else None,
                "profiles": profiles,
            }
        )
    places = [p for p in offers.get("queue", []) if p["server_name"] == server_name]
    return {
        "user": user,
        "server_name": server_name,
        "projects": projects,
        "startable": bool(projects and projects[0]["default"]),
        "currency": offers.get("currency", ""),
        "gpu_types": {t["gpu_type"]: t for t in offers.get("gpu_types", [])},
        "place": places[0] if places else None,
    }


def render(
    user: str,
    offers: dict[str, Any],
    images: dict[str, str] | None = None,
    shortfall: GpuShortfall | None = None,
    server_name: str = "",
) -> str:
    context = form_context(user, offers, images, shortfall, server_name)
    return _templates.get_template("subsidy_profiles.html").render(
        **context, not_startable=NOT_STARTABLE
    )


def admin_landing(hub_base_url: str) -> str:
    """What a hub admin in no project sees instead of a spawn form: where their work is."""
    return _templates.get_template("subsidy_admin_landing.html").render(
        admin_url=f"{hub_base_url}..{SERVICE_PREFIX}admin/", not_startable=NOT_STARTABLE
    )


def spawner_shortfall(spawner: Any) -> GpuShortfall | None:
    """The host's answer for a spawner with a GPU pool (local, Docker); ``None`` for spawners
    whose GPUs a scheduler finds (Kubernetes): the spawn page cannot see those."""
    pool = getattr(spawner, "pool", None)
    if pool is None or not hasattr(pool, "shortfall"):
        return None
    owner = f"{spawner.user.name}/{spawner.name}"

    def shortfall(count: int, gpu_type: str | None) -> tuple[str, str] | None:
        return pool.shortfall(owner, count, (gpu_type or "").upper())  # type: ignore[no-any-return]

    return shortfall


def unavailable_notice() -> str:
    return (
        '<p class="alert alert-danger" id="sh-unavailable">The subsidy service is not reachable, so '
        "prices and balances cannot be shown and no server can be started now. Running servers "
        "are not affected. Try again in a few minutes.</p>"
    )


async def render_options_form(
    client: SubsidyClient, spawner: Any, images: dict[str, str] | None = None
) -> str:
    user = spawner.user.name
    try:
        offers = await client.offers(user)
    except (ServiceUnavailable, ServiceRefused):
        return unavailable_notice()
    if not offers.get("projects") and getattr(spawner.user, "admin", False):
        return admin_landing(spawner.hub.base_url)
    return render(user, offers, images, spawner_shortfall(spawner), spawner.name or "")


def options_from_form(formdata: dict[str, list[str]]) -> dict[str, str]:
    """Form fields (lists of strings) to user options; validation is admission's job."""
    options = {}
    for key in ("profile", "project"):
        values = formdata.get(key) or []
        if values and values[0]:
            options[key] = values[0]
    return options
