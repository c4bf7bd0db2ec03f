"""Requests from edge nodes: parse the topic and payload, call a cloud service, answer.

Every failure of a request with a `…/rejected` channel is answered there with a code (the one
place cloud errors become MQTT codes); anything else — unknown topics, payloads that cannot be
correlated, presence of unknown nodes — is logged and dropped. Nothing here raises into the link.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Final

from agent.contracts import topics, wire
from agent.contracts.messages import (
    PAYLOADS,
    CertRenew,
    CertRenewAccepted,
    CertRenewRejected,
    CommandResponse,
    Presence,
    Rejected,
    ResourcesGet,
    ResourcesGetAccepted,
    ResourcesGetRejected,
    ShadowDelta,
    ShadowGet,
    ShadowGetAccepted,
    ShadowUpdate,
    ShadowUpdateAccepted,
    UpdateState,
)
from agent.contracts.shadow import PRESENCE_MAX_BYTES, REPORTED
from agent.contracts.topics import Channel
from cloud.errors import CloudError
from cloud.mqtt.commands import Commands
from cloud.mqtt.link import Incoming, LinkDown
from cloud.mqtt.ratelimit import RateLimiter
from cloud.services import cert_renewal, edge
from cloud.services.context import CloudContext
from cloud.store.desired import Written

log = logging.getLogger(__name__)
Publish = Callable[[str, bytes], Awaitable[None]]

REJECTED: Final = {
    Channel.SHADOW_UPDATE: Channel.SHADOW_UPDATE_REJECTED,
    Channel.SHADOW_GET: Channel.SHADOW_GET_REJECTED,
    Channel.RESOURCES_GET: Channel.RESOURCES_GET_REJECTED,
    Channel.CERT_RENEW: Channel.CERT_RENEW_REJECTED,
}
# Rejections whose model requires the request's clientToken: without one there is no answer.
_CORRELATED: Final[dict[Channel, type[Rejected]]] = {
    Channel.RESOURCES_GET_REJECTED: ResourcesGetRejected,
    Channel.CERT_RENEW_REJECTED: CertRenewRejected,
}
_TOKEN: Final = re.compile(r"^[\x21-\x7e]{1,64}$")


class Handlers:
    """Dispatch of received messages by channel."""

    def __init__(
        self,
        ctx: CloudContext,
        publish: Publish,
        limiter: RateLimiter,
        commands: Commands,
        *,
        clear_retained: Callable[[str], Awaitable[None]],
    ) -> None:
        """`clear_retained` deletes the retained message of a topic (Link.clear_retained)."""
        self._ctx = ctx
        self._publish = publish
        self._clear_retained = clear_retained
        self._limiter = limiter
        self._commands = commands
        limits = ctx.settings.shadow_limits
        # Far above any acceptable update; refused before JSON parsing spends time on it. The
        # managed broker already refuses bigger payloads from nodes; an external one may not.
        self._max_payload = limits.node_payload_bytes

    async def handle(self, message: Incoming) -> None:
        """Handle one message; never raises (a bad message must not stop the bridge)."""
        try:
            topic = topics.parse(message.topic)
        except topics.TopicError as exc:
            log.warning("dropped a message on an unknown topic", extra={"error": str(exc)})
            return
        try:
            if message.retain and not _retain_allowed(topic.channel, message.payload):
                await self._drop_retained(topic, message.payload)
                return
            await self._dispatch(topic, message.payload)
        except LinkDown as exc:
            log.warning("could not answer a node", extra={"nid": topic.nid, "error": str(exc)})
        except Exception:
            log.exception("failed to handle a node message", extra={"topic": message.topic})
            await self._reject(topic, 500, "internal error", _token_of(message.payload))

    async def _drop_retained(self, topic: topics.Topic, payload: bytes) -> None:
        """Delete a retained message the protocol does not use, unanswered (decision #76).

        Only presence is retained in the protocol; anything else a node leaves retained would
        stay in the broker's memory. The empty message that deletes it comes back here (retain
        as published) and is dropped without another publish.
        """
        if not payload:
            return
        log.warning(
            "deleted a retained message a node left on its topic",
            extra={"topic": str(topic), "bytes": len(payload)},
        )
        await self._clear_retained(str(topic))

    async def _dispatch(self, topic: topics.Topic, payload: bytes) -> None:
        channel = topic.channel
        if channel is Channel.PRESENCE:
            await self._presence(topic, payload)
            return
        if channel is Channel.CMD_RESPONSE:
            self._command_response(topic, payload)
            return
        if channel not in REJECTED:
            log.debug("ignored a message", extra={"topic": str(topic)})
            return
        token = _token_of(payload) if len(payload) <= self._max_payload else None
        if not self._limiter.allow(topic.nid):
            await self._reject(topic, 429, "rate limited: too many messages from this node", token)
            return
        if len(payload) > self._max_payload:
            await self._reject(
                topic, 413, f"payload of {len(payload)} bytes is too large", token=None
            )
            return
        try:
            request = PAYLOADS[channel].decode(payload)
            if isinstance(request, ShadowUpdate):
                await self._update(topic, request)
            elif isinstance(request, ShadowGet):
                await self._get(topic, request)
            elif isinstance(request, ResourcesGet):
                await self._resources(topic, request)
            elif isinstance(request, CertRenew):
                await self._renew(topic, request)
        except wire.PayloadError as exc:
            await self._reject(topic, 400, str(exc), token)
        except CloudError as exc:
            await self._reject(topic, exc.status, exc.message, token)

    async def _update(self, topic: topics.Topic, request: ShadowUpdate) -> None:
        sections = request.state.sections()
        if "desired" in sections:
            raise edge.Refused(403, "state.desired: a node may not write its desired state")
        patch = sections[REPORTED]
        done = await edge.report(
            self._ctx, topic.namespace, topic.node, patch, version=request.version
        )
        doc = done.document
        accepted = ShadowUpdateAccepted(
            state=UpdateState.model_validate({REPORTED: patch}),
            metadata=done.metadata,
            version=doc["version"],
            timestamp=doc["timestamp"],
            client_token=request.client_token,
        )
        await self._send(topic.nid, Channel.SHADOW_UPDATE_ACCEPTED, accepted.to_bytes())
        push = edge.delta_push(doc)
        if push is not None:
            await self._send(topic.nid, Channel.SHADOW_UPDATE_DELTA, delta_message(push))

    async def _get(self, topic: topics.Topic, request: ShadowGet) -> None:
        doc = await edge.document(topic.namespace, topic.node)
        answer = ShadowGetAccepted.model_validate({**doc, "clientToken": request.client_token})
        await self._send(topic.nid, Channel.SHADOW_GET_ACCEPTED, answer.to_bytes())

    async def _resources(self, topic: topics.Topic, request: ResourcesGet) -> None:
        values = await edge.resources(self._ctx, topic.namespace, topic.node, request.resources)
        answer = ResourcesGetAccepted(client_token=request.client_token, values=values)
        await self._send(topic.nid, Channel.RESOURCES_GET_ACCEPTED, answer.to_bytes())

    async def _renew(self, topic: topics.Topic, request: CertRenew) -> None:
        issued = await cert_renewal.renew(self._ctx, topic.namespace, topic.node, request.csr)
        answer = CertRenewAccepted(
            client_token=request.client_token, certificate=issued.cert_pem, ca=issued.ca_pem
        )
        await self._send(topic.nid, Channel.CERT_RENEW_ACCEPTED, answer.to_bytes())

    async def _presence(self, topic: topics.Topic, payload: bytes) -> None:
        try:
            presence = Presence.decode(payload)
            await edge.presence(topic.namespace, topic.node, online=presence.online)
        except wire.PayloadError as exc:
            log.warning("dropped a bad presence", extra={"nid": topic.nid, "error": str(exc)})
        except CloudError as exc:
            log.info("dropped a presence", extra={"nid": topic.nid, "error": exc.message})

    def _command_response(self, topic: topics.Topic, payload: bytes) -> None:
        # Every replica receives every answer (decision #39); most are some other replica's.
        if len(payload) > self._max_payload:
            log.warning("dropped an oversized command answer", extra={"nid": topic.nid})
            return
        try:
            response = CommandResponse.decode(payload)
        except wire.PayloadError as exc:
            log.warning("dropped a bad command answer", extra={"nid": topic.nid, "error": str(exc)})
            return
        if not self._commands.resolve(topic.nid, response):
            log.debug("ignored a command answer of another replica", extra={"nid": topic.nid})

    async def _reject(
        self, topic: topics.Topic, code: int, message: str, token: str | None
    ) -> None:
        channel = REJECTED.get(topic.channel)
        if channel is None:
            return
        model = _CORRELATED.get(channel, Rejected)
        if model is not Rejected and token is None:  # nothing to correlate the answer with
            log.info("dropped an uncorrelatable request", extra={"nid": topic.nid})
            return
        answer = model(code=code, message=message, client_token=token)
        try:
            await self._send(topic.nid, channel, answer.to_bytes())
        except LinkDown as exc:
            log.warning("could not reject a request", extra={"nid": topic.nid, "error": str(exc)})

    async def _send(self, nid: str, channel: Channel, payload: bytes) -> None:
        await self._publish(topics.build(nid, channel), payload)


def _retain_allowed(channel: Channel, payload: bytes) -> bool:
    """Whether a retained message may stay: a presence of plausible size (DESIGN §4)."""
    return channel is Channel.PRESENCE and 0 < len(payload) <= PRESENCE_MAX_BYTES


def delta_message(push: edge.DeltaPush) -> bytes:
    """The `shadow/update/delta` payload of a non-empty delta."""
    return ShadowDelta(
        state=push.state,
        metadata=push.metadata,
        version=push.version,
        timestamp=push.timestamp,
        desired=push.desired,
    ).to_bytes()


def doorbell(change: Written) -> bytes:
    """The `shadow/update/delta` payload after a desired change: the new version and desired.

    A delta cannot show a removal, so the push carries the whole desired section the write
    produced (decision #124): the agent adopts it as it is, and reads its document only when
    the push is missing or does not follow on from what it has.
    """
    return ShadowDelta(
        state={},
        metadata={},
        version=change.version,
        timestamp=change.timestamp,
        desired=change.desired,
    ).to_bytes()


def _token_of(payload: bytes) -> str | None:
    """The request's clientToken when it is a valid one, so even a bad request is correlated."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    token = data.get("clientToken") if isinstance(data, dict) else None
    return token if isinstance(token, str) and _TOKEN.match(token) else None
