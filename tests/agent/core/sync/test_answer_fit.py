"""A command answer is cut to what a node may publish (decision #98), keeping the latest text."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agent.contracts.messages import CommandResponse
from agent.core.sync.answer_fit import NODE_PAYLOAD_LIMIT, fit_answer


def decoded(data: bytes) -> CommandResponse:
    return CommandResponse.decode(data)


def test_an_answer_that_fits_is_sent_as_is() -> None:
    response = CommandResponse(client_token="t", ok=True, result="short text")
    assert fit_answer(response) == response.to_bytes()


def test_long_text_keeps_its_end_behind_a_line_saying_how_much_was_cut() -> None:
    text = "".join(f"line {index}\n" for index in range(100_000))  # ~1.1 MB
    data = fit_answer(CommandResponse(client_token="t", ok=True, result=text))
    assert len(data) <= NODE_PAYLOAD_LIMIT
    assert len(data) > NODE_PAYLOAD_LIMIT - 200  # cut to fit, not far below
    answer = decoded(data)
    assert answer.ok
    assert isinstance(answer.result, str)
    marker, _, kept = answer.result.partition("\n")
    assert text.endswith(kept)
    assert marker == (
        f"[{len(text) - len(kept)} characters cut: a node may publish at most "
        f"{NODE_PAYLOAD_LIMIT} bytes]"
    )


@given(
    st.text(alphabet=st.sampled_from(['"', "\\", "\x01", "é", "🙂", "a", "\n"]), min_size=1),
    st.integers(min_value=300, max_value=2000),
)
def test_escaped_text_is_cut_within_the_limit(text: str, limit: int) -> None:
    """JSON escaping (6 bytes for a control character) and UTF-8 make sizes per character vary."""
    data = fit_answer(CommandResponse(client_token="t", ok=True, result=text * 50), limit)
    assert len(data) <= limit
    result = decoded(data).result
    assert isinstance(result, str)
    if len(CommandResponse(client_token="t", ok=True, result=text * 50).to_bytes()) > limit:
        assert result.startswith("[")
        assert (text * 50).endswith(result.partition("\n")[2])


def test_a_structured_result_that_does_not_fit_becomes_a_failure_saying_so() -> None:
    big = {"items": ["x" * 1000] * 1000}
    data = fit_answer(CommandResponse(client_token="t", ok=True, result=big))
    answer = decoded(data)
    assert not answer.ok
    assert answer.error is not None
    assert f"more than the {NODE_PAYLOAD_LIMIT} bytes a node may publish" in answer.error
    assert answer.client_token == "t"  # still correlated, so the caller is not left waiting


def test_a_huge_error_message_is_cut() -> None:
    data = fit_answer(CommandResponse(client_token="t", ok=False, error="e" * 1_000_000))
    answer = decoded(data)
    assert not answer.ok
    assert answer.error is not None
    assert answer.error.endswith("[cut]")
    assert len(data) < 5000
    assert json.loads(data)["clientToken"] == "t"
