"""What every request handler needs, in one place: settings, database, clock, auth, metrics.

The app keeps one :class:`ServiceContext` on ``app.state``; routes receive it through the
``Context`` dependency instead of importing globals, so two apps (one per database in the
tests) never share state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from subsidyhub.ledger.db import Database
from subsidyhub.settings import Settings

if TYPE_CHECKING:
    from subsidyhub.service.auth import HubAuthenticator
    from subsidyhub.service.me_page import MePages
    from subsidyhub.service.metrics import ServiceMetrics
    from subsidyhub.service.queue_places import QueuePlaces


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    db: Database
    authenticator: HubAuthenticator
    metrics: ServiceMetrics
    # Epoch milliseconds; injectable so tests can admit at one instant and stop at another.
    clock: Callable[[], int]
    # GET me's answers of the last second (and nothing else's).
    me_pages: MePages
    # Each GPU queue's places of the last second, while the queue is unchanged.
    queue_places: QueuePlaces


async def get_context(request: Request) -> ServiceContext:
    # async so that FastAPI calls it on the event loop: a plain ``def`` dependency costs a
    # worker-thread hop on every request that uses it (all of them, through authentication).
    context: ServiceContext = request.app.state.subsidy
    return context


Context = Annotated[ServiceContext, Depends(get_context)]
