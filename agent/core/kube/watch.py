"""A local copy of the objects of one kind in one namespace, kept by list-then-watch.

Status comes from these copies, so reading it costs no API call and keeps working (with the last
known values) while the API server is away. A watch that ends is resumed from the last
resourceVersion; one that expired (410 Gone) or failed lists again, after a backoff while the
server cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agent.contracts.kit import backoff
from agent.core.kube.client import API_VERSIONS, KubeApi, KubeError

log = logging.getLogger(__name__)
Manifest = dict[str, Any]
EventListener = Callable[[str, Manifest], None]
"""Called with the event type (ADDED, MODIFIED, DELETED, SYNCED) and the object."""

BACKOFF_CAP = 30.0


class Expired(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class WatchedKind:
    """The objects of `kind` in `namespace` matching `selector`, by name."""

    def __init__(
        self,
        api: KubeApi,
        kind: str,
        namespace: str,
        selector: str,
        listener: EventListener,
        *,
        api_version: Callable[[], str] | None = None,
    ) -> None:
        """`api_version` says which version to list and watch (CronJobs' depends on the
        server, learnt later); by default the kind's usual one."""
        self.kind = kind
        self.namespace = namespace
        self.objects: dict[str, Manifest] = {}
        self.synced = asyncio.Event()
        self._api = api
        self._selector = selector
        self._listener = listener
        self._api_version = api_version or (lambda: API_VERSIONS[kind])
        self._delivered = False  # an event came since the last failure: back off from the start

    def put(self, manifest: Manifest) -> None:
        """Take a fresher copy than the watch has sent yet (the answer of our own apply)."""
        self.objects[manifest["metadata"]["name"]] = manifest

    async def run(self) -> None:
        """List and watch until cancelled."""
        failures = 0
        while True:
            self._delivered = False
            try:
                version = await self._list()
                while True:
                    version = await self._watch(version)
                    failures = 0  # the server ended a working watch
            except Expired:
                continue
            except KubeError as exc:
                failures = 1 if self._delivered else failures + 1
                delay = backoff.delay(failures, base=0.5, cap=BACKOFF_CAP)
                log.warning(
                    "watch failed; listing again later",
                    extra={
                        "kind": self.kind,
                        "namespace": self.namespace,
                        "error": str(exc),
                        "retry_in": round(delay, 2),
                    },
                )
                await asyncio.sleep(delay)

    async def _list(self) -> str:
        answer = await self._api.list(
            self.kind, self.namespace, selector=self._selector, api_version=self._api_version()
        )
        items = {}
        for item in answer.get("items", []):
            # A list's items carry neither kind nor apiVersion; watch events' objects do.
            item.setdefault("kind", self.kind)
            item.setdefault("apiVersion", answer.get("apiVersion") or self._api_version())
            items[item["metadata"]["name"]] = item
        gone = [manifest for name, manifest in self.objects.items() if name not in items]
        self.objects = items
        for manifest in gone:
            self._listener("DELETED", manifest)
        for manifest in items.values():
            self._listener("ADDED", manifest)
        self.synced.set()
        self._listener("SYNCED", {"kind": self.kind, "metadata": {"namespace": self.namespace}})
        return str(answer.get("metadata", {}).get("resourceVersion", ""))

    async def _watch(self, version: str) -> str:
        """One watch request; the resourceVersion to resume from when the server ends it."""
        stream = self._api.watch(
            self.kind,
            self.namespace,
            selector=self._selector,
            resource_version=version,
            api_version=self._api_version(),
        )
        try:
            async for event in stream:
                kind = event.get("type")
                manifest = event.get("object") or {}
                if kind == "ERROR":
                    if manifest.get("code") == 410:
                        raise Expired
                    raise KubeError(int(manifest.get("code") or 0), str(manifest.get("message")))
                self._delivered = True
                meta = manifest.get("metadata", {})
                version = str(meta.get("resourceVersion", version))
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self.objects.pop(meta.get("name", ""), None)
                elif kind in ("ADDED", "MODIFIED"):
                    self.objects[meta["name"]] = manifest
                else:
                    continue
                self._listener(str(kind), manifest)
        except (ValueError, KeyError) as exc:  # a line that is not a watch event
            raise KubeError(0, f"unreadable watch event: {exc}") from exc
        finally:
            await stream.aclose()
        return version
