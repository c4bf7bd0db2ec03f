"""Baetyl's deferred deployments: an app saved with `cronStatus: 1` and a `cronTime` goes to no
node until that time; then its `cronStatus` becomes 2 and it is placed like any app (Baetyl's
"cron apps", decision #147).

While it waits, the app's matching selector is empty (cloud.services.apps keeps its own in the
spec, which is what the API shows). `run` is the cloud's one task for them: it sleeps until the
next app is due — or until an app is saved (`CloudContext.schedule_changed`), or a minute at
most — and releases every due app. Releasing re-checks under the namespace lock, so replicas of
the cloud running it side by side release each app once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

from agent.contracts.resources import Application
from agent.contracts.wire import PayloadError, validate
from cloud.services.context import CloudContext
from cloud.store import apps as store

log = logging.getLogger(__name__)
MAX_SLEEP: Final = 60.0
"""Seconds between looks when nothing is due sooner (a time set by another replica, say)."""
Release = Callable[[CloudContext, str, str], Awaitable[bool]]


def waiting(spec: Application, now: datetime) -> bool:
    """Whether `spec` is a deferred app whose time is still to come."""
    at = spec.deploy_at
    return spec.cron_status == 1 and at is not None and at > now


async def run(ctx: CloudContext, release: Release) -> None:
    """Release deferred apps as they fall due, until cancelled."""
    while True:
        ctx.schedule_changed.clear()
        try:
            pending = await _pending()
            now = datetime.now(UTC)
            for namespace, name, at in pending:
                if at <= now and await release(ctx, namespace, name):
                    log.info("deferred app deployed", extra={"app": f"{namespace}/{name}"})
            later = [at for _, _, at in pending if at > now]
            pause = min([MAX_SLEEP, *((at - now).total_seconds() for at in later)])
        except Exception:
            log.exception("deferred deployments: a pass failed")
            pause = MAX_SLEEP
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.schedule_changed.wait(), max(0.05, pause))


async def _pending() -> list[tuple[str, str, datetime]]:
    """(namespace, name, deploy time) of every app that waits (its matching selector empty)."""
    found: list[tuple[str, str, datetime]] = []
    for namespace, name, spec in await store.unplaced():
        try:
            app = validate(Application, spec)
        except PayloadError:
            continue
        if app.cron_status == 1 and app.deploy_at is not None:
            found.append((namespace, name, app.deploy_at))
    return found
