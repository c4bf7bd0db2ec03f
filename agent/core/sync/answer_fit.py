"""Fit a command answer into what a node may publish (decision #98).

The managed broker refuses a node's message over `ShadowLimits.node_payload_bytes` and the cloud
drops one; an answer cut to fit is worth more than one that silently never arrives. A text result
(the `logs` command) keeps its end, the latest lines, behind a line saying how much was cut;
any other result that does not fit becomes a failure saying so.
"""

from __future__ import annotations

from typing import Final

from agent.contracts.messages import CommandResponse
from agent.contracts.shadow import DEFAULT_LIMITS

NODE_PAYLOAD_LIMIT: Final = DEFAULT_LIMITS.node_payload_bytes
_ERROR_CHARS: Final = 4096
"""Characters of an error message kept; an error is for a person, not a log dump."""


def fit_answer(response: CommandResponse, limit: int = NODE_PAYLOAD_LIMIT) -> bytes:
    """The answer as published: `response.to_bytes()`, or a cut version within `limit` bytes."""
    data = response.to_bytes()
    if len(data) <= limit:
        return data
    token = response.client_token
    if response.ok and isinstance(response.result, str):
        fitted = _tail_that_fits(response.result, token, limit)
        if fitted is not None:
            return fitted
    if not response.ok and response.error is not None and len(response.error) > _ERROR_CHARS:
        error = response.error[:_ERROR_CHARS] + " [cut]"
        return CommandResponse(client_token=token, ok=False, error=error).to_bytes()
    return CommandResponse(
        client_token=token,
        ok=False,
        error=f"the answer is {len(data)} bytes, more than the {limit} bytes a node may publish",
    ).to_bytes()


def _tail_that_fits(text: str, token: str, limit: int) -> bytes | None:
    """The longest end of `text` that fits with its marker line, by bisection on its length
    (JSON escaping makes bytes per character vary); None if not even the marker fits."""

    def encoded(kept: int) -> bytes:
        marker = f"[{len(text) - kept} characters cut: a node may publish at most {limit} bytes]\n"
        tail = text[len(text) - kept :] if kept else ""
        return CommandResponse(client_token=token, ok=True, result=marker + tail).to_bytes()

    low, high = 0, len(text)
    if len(encoded(low)) > limit:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if len(encoded(middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return encoded(low)
