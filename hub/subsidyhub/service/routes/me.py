"""What a user sees of themself: ``GET me`` and the profiles they may spawn.

``GET me`` is polled by every JupyterLab status bar, so it is one read transaction with two
queries whatever the history's length (see :mod:`subsidyhub.service.me_page`), no hub call
when the token is cached, and no read at all when the caller asked less than a second ago
and nothing was written since.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from subsidyhub import limits, shapes
from subsidyhub.errors import Forbidden
from subsidyhub.ledger import capacity, prices, queue, time_left
from subsidyhub.ledger.accounts import load_accounts
from subsidyhub.ledger.admission import evaluate, limits_in_force, member_gpu_ms_week
from subsidyhub.ledger.courses import hours_left
from subsidyhub.ledger.policy import is_student
from subsidyhub.ledger.pricing import list_rate_per_hour, resources_of, subsidy_rate_per_hour
from subsidyhub.ledger.projects import projects_of
from subsidyhub.money import bp_to_fraction_string, to_decimal_string
from subsidyhub.service.auth import CurrentIdentity, authenticate, require_user_or_admin
from subsidyhub.service.context import Context, get_context
from subsidyhub.service.me_page import render_me
from subsidyhub.service.schemas import UsernameParam
from subsidyhub.timeutil import iso

router = APIRouter(tags=["me"])


@router.get(
    "/me",
    summary="The caller's projects, balances, warnings and running servers",
    response_model=shapes.Me,
    response_model_exclude_unset=True,
)
async def read_me(request: Request) -> Response:
    # The same authentication as every route's ``CurrentIdentity``, called directly: resolving
    # the dependencies costs FastAPI about as much as answering from the cache below.
    context = await get_context(request)
    identity = await authenticate(request, context)
    if not identity.is_user:
        raise Forbidden(
            f"GET me describes a user; this token belongs to {identity.actor}. "
            "Use a user's token, or the admin endpoints."
        )
    now = context.clock()
    pages = context.me_pages
    body = pages.get(identity.name, identity.is_admin, now)
    if body is None:
        generation = pages.watch.generation
        arguments = (context.db, context.settings, identity.name, identity.is_admin, now)
        if context.db.is_sqlite:
            # On the event loop: an embedded read (WAL: it never waits for a writer) of about
            # half a millisecond of CPU. A worker thread would add a hop and GIL hand-offs
            # with the loop that, under load, cost more CPU than the read itself.
            body = render_me(*arguments)
        else:
            body = await run_in_threadpool(render_me, *arguments)
        pages.put(identity.name, identity.is_admin, now, generation, body)
    return Response(body, media_type="application/json")


@router.get(
    "/users/{name}/profiles",
    summary="Each profile in each of the user's projects: price, subsidy, hours left, allowed",
    response_model=shapes.Offers,
    response_model_exclude_unset=True,
)
def read_profiles(
    name: UsernameParam, identity: CurrentIdentity, context: Context
) -> dict[str, Any]:
    require_user_or_admin(identity, name, "read the spawn options")
    settings = context.settings
    now = context.clock()
    with context.db.read() as session:
        price_list = prices.as_price_list(prices.current_version(session, now))
        memberships = projects_of(session, name)
        accounts = load_accounts(session, [project for project, _ in memberships], now)
        offered: list[dict[str, Any]] = []
        gpu_states: dict[str, capacity.TypeState] = {}  # each type read once for all profiles
        for project, member in memberships:
            in_force = limits_in_force(project, member)
            measured = {"member_gpu_ms_week": member_gpu_ms_week(session, project.id, name, now)}
            # A course's student sees their own allowance, never the course's money.
            student = is_student(project.kind, member.role)
            offers = []
            for profile in settings.profiles:
                decision, account, hold = evaluate(
                    session,
                    settings,
                    project,
                    name,
                    profile,
                    price_list,
                    now,
                    gpu_states=gpu_states,
                )
                offer = shapes.describe_offer(
                    profile, price_list, project.subsidy_bp, account, decision, hold
                )
                if student:
                    offer["hours_left"] = hours_left(
                        in_force, measured["member_gpu_ms_week"], profile.gpu_count
                    )
                left = time_left.for_profile(
                    available=account.available,
                    subsidy_per_hour=subsidy_rate_per_hour(
                        list_rate_per_hour(price_list, resources_of(profile)), project.subsidy_bp
                    ),
                    in_force=in_force,
                    gpu_ms_week=measured["member_gpu_ms_week"],
                    gpu_count=profile.gpu_count,
                    reserved_ms=decision.max_duration_ms if decision.reserved_for else None,
                )
                offer["time_left_seconds"] = left.seconds
                offer["time_left_reason"] = left.binding
                if decision.reserved_for and decision.max_duration_ms is not None:
                    offer["reserved_for"] = decision.reserved_for
                    offer["reserved_from"] = iso(now + decision.max_duration_ms)
                offers.append(offer)
            offered.append(
                {
                    "slug": project.slug,
                    "name": project.name,
                    "role": member.role,
                    "status": project.status,
                    "student": student,
                    "subsidy_rate": bp_to_fraction_string(project.subsidy_bp),
                    "available": None
                    if student
                    else to_decimal_string(accounts[project.id].available),
                    "quota": limits.show_all(in_force),
                    "usage": limits.show_usage(measured),
                    "left": limits.show_left(in_force, measured),
                    "profiles": offers,
                }
            )
        gpu_types = [
            shapes.describe_type_view(queue.view(session, settings, gpu_type, now))
            for gpu_type in capacity.gpu_types(settings)
        ]
        waiting = [
            shapes.describe_place(place)
            for place in queue.all_places(
                session, settings, now, username=name, places_of=context.queue_places.of_type
            )
        ]
    return {
        "user": name,
        "currency": settings.currency,
        "price_version": price_list.version,
        "projects": offered,
        "gpu_types": gpu_types,
        "queue": waiting,
    }
