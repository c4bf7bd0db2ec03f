"""`agent.contracts.shadow` exposes exactly the API of DESIGN §5 (other code calls only these)."""

import inspect

from agent.contracts import shadow


def test_public_functions_have_the_documented_signatures() -> None:
    assert (
        str(inspect.signature(shadow.merge))
        == "(section: 'JSONObject', patch: 'JSONObject') -> 'JSONObject'"
    )
    assert (
        str(inspect.signature(shadow.delta))
        == "(desired: 'JSONObject', reported: 'JSONObject') -> 'JSONObject'"
    )
    assert str(inspect.signature(shadow.new_document)) == "(now: 'float') -> 'JSONObject'"
    params = inspect.signature(shadow.apply_update).parameters
    assert list(params)[:3] == ["doc", "section", "patch"]
    assert params["version"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["now"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["limits"].default is shadow.DEFAULT_LIMITS


def test_shadow_error_is_an_exception_with_code_and_message() -> None:
    assert issubclass(shadow.ShadowError, Exception)
    assert list(inspect.signature(shadow.ShadowError).parameters) == ["code", "message"]
