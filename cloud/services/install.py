"""Online installation: install tokens, the install command, script and manifest, activation.

Flow (docs/install.md): an admin asks `GET /v1/nodes/{n}/init` for a command carrying a fresh
install token; the node runs it, which downloads the script (or manifest) and runs
`baetyl-init`; that asks `GET /v1/active` which node the token is for, makes its key and CSR and
sends `POST /v1/active`, which signs the CSR and consumes the token in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.contracts import names
from agent.contracts.activation import ActivateRequest, ActivateResponse, ActivationInfo
from cloud.errors import InvalidToken, NotFound, Unavailable
from cloud.installer import dist, render, tokens
from cloud.installer.render import InstallValues, Method, Mode
from cloud.services import node_certs, nodes, properties
from cloud.services.context import Caller, CloudContext
from cloud.store import node_certs as store
from cloud.store.db import transaction
from cloud.store.nodes import NodeRecord

log = logging.getLogger(__name__)
# Used tokens are kept this long past their expiry, then forgotten (they are refused as expired).
PURGE_AFTER = timedelta(hours=1)


def issue_token(ctx: CloudContext, record: NodeRecord) -> str:
    """A fresh install token for this node instance, valid for `--install-token-ttl`."""
    claims = tokens.new_claims(
        record.namespace,
        record.name,
        now=time.time(),
        ttl=ctx.settings.install.token_ttl,
        instance=tokens.instance_of(record.create_time),
    )
    return tokens.sign(_key(ctx), claims)


def check_token(ctx: CloudContext, token: str) -> tokens.TokenClaims:
    """The claims of an authentic, unexpired token (used or not); InvalidToken otherwise."""
    try:
        return tokens.verify(_key(ctx), token, now=time.time())
    except tokens.TokenError as exc:
        raise InvalidToken(str(exc)) from None


async def install_command(
    ctx: CloudContext, caller: Caller, name: str, *, mode: Mode | None, method: Method
) -> str:
    """The command that installs node `name` with a fresh token.

    An operator's `baetyl-init-command` property (`-wget` for wget) overrides the built-in
    command; it may use `{{address}}`, `{{namespace}}`, `{{node}}`, `{{mode}}` and `{{token}}`.
    """
    record = await nodes.require(caller.namespace, name)
    chosen: Mode = mode or ("kube" if record.node_mode == "kube" else "native")
    token = issue_token(ctx, record)
    template_name = properties.INIT_COMMAND + ("-wget" if method == "wget" else "")
    found = await properties.values([template_name, properties.INIT_SERVER_ADDRESS])
    template = found.get(template_name)
    if template:
        # The operator's command may install in a way of its own: nothing more is required.
        values = {
            "address": found.get(properties.INIT_SERVER_ADDRESS) or ctx.settings.init_url or "",
            "namespace": caller.namespace,
            "node": record.name,
            "mode": chosen,
            "token": token,
        }
        for key, value in values.items():
            template = template.replace("{{" + key + "}}", value)
        return template
    url = init_url(ctx)
    _node_mqtt_url(ctx)  # refuse now rather than at activation, after the install
    nid = names.make_nid(caller.namespace, record.name)
    command = InstallValues(cloud_url=url, token=token, nid=nid)
    return render.install_command(command, mode=chosen, method=method)


async def activation_info(ctx: CloudContext, token: str) -> ActivationInfo:
    """Which node `token` installs (checked, not consumed; a used token still answers)."""
    claims = check_token(ctx, token)
    await _require_instance(claims)
    return ActivationInfo(
        namespace=claims.namespace, name=claims.name, nid=claims.nid, expires=claims.expires
    )


async def activate(ctx: CloudContext, request: ActivateRequest) -> ActivateResponse:
    """Sign the node's CSR and consume the token, all in one transaction.

    Refused with InvalidToken (bad, expired, used), NotFound (the node was deleted) or Invalid
    (bad CSR, CN not the nid); any refusal leaves nothing recorded and the token unused.
    """
    claims = check_token(ctx, request.token)
    mqtt = _node_mqtt_url(ctx)
    async with transaction():
        await _require_unused(claims)
        await _require_instance(claims)
        issued = await node_certs.issue(
            ctx,
            claims.namespace,
            claims.name,
            request.csr.encode("utf-8"),
            expected_cn=claims.nid,
        )
        consumed = await store.consume_token(
            jti=claims.jti,
            namespace=claims.namespace,
            name=claims.name,
            expires_at=datetime.fromtimestamp(claims.expires, UTC),
        )
        if not consumed:  # a concurrent activation with the same token won
            raise _used(claims)
    await store.purge_consumed(datetime.now(UTC) - PURGE_AFTER)
    log.info("node activated", extra={"nid": claims.nid, "serial": issued.serial})
    return ActivateResponse(
        nid=claims.nid,
        namespace=claims.namespace,
        name=claims.name,
        certificate=issued.cert_pem,
        ca=issued.ca_pem,
        mqtt=mqtt,
        valid_days=issued.valid_days,
    )


async def install_script(ctx: CloudContext, token: str) -> str:
    """The install script for the token's node; 503 while no agent wheel is there to serve."""
    claims = await _unused_claims(ctx, token)
    values = InstallValues(cloud_url=init_url(ctx), token=token, nid=claims.nid)
    _node_mqtt_url(ctx)
    directory = ctx.settings.dist_dir
    wheel = await asyncio.to_thread(dist.newest_wheel, directory)
    if wheel is None:
        raise Unavailable(f"no agent wheel (baetyl_py-*.whl) in {directory}: {dist.BUILD_HINT}")
    return await asyncio.to_thread(render.install_script, values, wheel_file=wheel.name)


async def deployment_manifest(ctx: CloudContext, token: str) -> str:
    """The Kubernetes manifest that runs the agent for the token's node."""
    claims = await _unused_claims(ctx, token)
    values = InstallValues(cloud_url=init_url(ctx), token=token, nid=claims.nid)
    _node_mqtt_url(ctx)
    return await asyncio.to_thread(
        render.deployment_manifest, values, image=ctx.settings.agent_image
    )


async def dist_file(ctx: CloudContext, name: str) -> Path:
    """A wheel file of the dist directory by name, or NotFound."""
    found = await asyncio.to_thread(dist.served_file, ctx.settings.dist_dir, name)
    if found is None:
        raise NotFound("file", name)
    return found


async def _unused_claims(ctx: CloudContext, token: str) -> tokens.TokenClaims:
    claims = check_token(ctx, token)
    await _require_unused(claims)
    await nodes.require(claims.namespace, claims.name)
    return claims


async def _require_instance(claims: tokens.TokenClaims) -> None:
    """The token's node exists and is the instance the token was issued for."""
    record = await nodes.require(claims.namespace, claims.name)
    if tokens.instance_of(record.create_time) != claims.instance:
        raise InvalidToken(
            f"the install token was issued for an earlier node {claims.name!r} that was deleted "
            f"since; get a new install command (GET /v1/nodes/{claims.name}/init)"
        )


async def _require_unused(claims: tokens.TokenClaims) -> None:
    if await store.token_consumed(claims.jti):
        raise _used(claims)


def _used(claims: tokens.TokenClaims) -> InvalidToken:
    return InvalidToken(
        f"the install token was already used to activate node {claims.nid}; to install it "
        f"again, get a new install command (GET /v1/nodes/{claims.name}/init)"
    )


def init_url(ctx: CloudContext) -> str:
    """The address nodes reach this cloud at (install scripts, wheels), or Unavailable."""
    url = ctx.settings.init_url
    if url is None:
        raise Unavailable(
            "the cloud does not know the address nodes reach it at (it listens on every "
            "address): start baetyl-cloud serve with --init-url http(s)://HOST:PORT"
        )
    return url


def _node_mqtt_url(ctx: CloudContext) -> str:
    url = ctx.settings.node_mqtt_url
    if url is None:
        raise Unavailable(
            "the cloud does not know the broker address nodes should dial: start baetyl-cloud "
            "serve with --node-mqtt-url mqtts://HOST:PORT"
        )
    return url


def _key(ctx: CloudContext) -> bytes:
    return ctx.secrets.derive_key(tokens.HKDF_INFO)
