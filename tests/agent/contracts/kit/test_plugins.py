"""Plug-in points: names found through entry points, and every way a plug-in can be unusable.

Each test installs small distributions the way pip leaves them (a `*.dist-info` directory with
`METADATA` and `entry_points.txt`, and the module beside it) in a directory put on `sys.path`,
so they are found by the same importlib.metadata lookup as any installed package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pytest

from agent.contracts.kit.plugins import PluginError, PluginPoint, members, unmet


class Greeter(Protocol):
    """What the test point's plug-ins must do."""

    prefix: str

    def greet(self, name: str) -> str: ...

    async def farewell(self, name: str) -> str: ...

    def __enter__(self) -> Greeter: ...


GREETERS = PluginPoint[Greeter]("test_kit_greeter", "greeter plug-in", Greeter, "--greeter")

GOOD = """
class Greeter:
    prefix = "hello"

    def __init__(self, punctuation):
        self.punctuation = punctuation

    def greet(self, name):
        return f"{self.prefix} {name}{self.punctuation}"

    async def farewell(self, name):
        return f"bye {name}"

    def __enter__(self):
        return self


class Rude:
    prefix = "hey"

    def __init__(self, punctuation):
        pass

    def farewell(self, name):
        return "go"


def failing(punctuation):
    raise ValueError("no greeting today")


NOT_CALLABLE = 42
"""


def install(site: Path, dist: str, module: str, source: str, entries: dict[str, str]) -> None:
    """A distribution `dist` 1.0 in `site` holding `module`, registering `entries` (name →
    object reference) in the test point's group."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{GREETERS.group}]\n{lines}")
    (site / f"{module}.py").write_text(source)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site directory on `sys.path` holding the distribution `greeters`."""
    install(
        tmp_path,
        "greeters",
        "kit_greeters",
        GOOD,
        {
            "polite": "kit_greeters:Greeter",
            "rude": "kit_greeters:Rude",
            "failing": "kit_greeters:failing",
            "constant": "kit_greeters:NOT_CALLABLE",
            "missing": "kit_no_such_module:Greeter",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_plug_in_is_made_by_name_with_the_given_arguments(site: Path) -> None:
    assert GREETERS.names() == ["constant", "failing", "missing", "polite", "rude"]
    greeter = GREETERS.make("polite", "!")
    assert greeter.greet("edge") == "hello edge!"


def test_an_unknown_name_lists_the_installed_ones_and_suggests_the_closest(site: Path) -> None:
    with pytest.raises(PluginError) as caught:
        GREETERS.check("polit")
    assert str(caught.value) == (
        "--greeter: no greeter plug-in named 'polit' is installed; did you mean 'polite'? "
        "(installed: constant, failing, missing, polite, rude; entry-point group "
        "baetyl_py.plugins.test_kit_greeter, docs/plugins.md)"
    )
    with pytest.raises(PluginError, match=r"named 'zzz' is installed \(installed: constant"):
        GREETERS.make("zzz")


def test_with_nothing_installed_the_message_says_so() -> None:
    with pytest.raises(PluginError, match=r"\(installed: none; entry-point group"):
        GREETERS.check("polite")


def test_what_a_plug_in_lacks_of_its_protocol_is_named(site: Path) -> None:
    with pytest.raises(PluginError) as caught:
        GREETERS.make("rude", "!")
    assert str(caught.value) == (
        "greeter plug-in 'rude' (kit_greeters:Rude) does not implement Greeter: no __enter__; "
        "farewell must be a coroutine function (async def); no greet (docs/plugins.md)"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("failing", "greeter plug-in 'failing' (kit_greeters:failing) could not be set up: "),
        ("constant", "greeter plug-in 'constant' (kit_greeters:NOT_CALLABLE) is not a class"),
        ("missing", "greeter plug-in 'missing' (kit_no_such_module:Greeter) cannot be imported"),
    ],
)
def test_a_plug_in_that_fails_to_load_or_set_up_is_named(
    site: Path, name: str, message: str
) -> None:
    with pytest.raises(PluginError) as caught:
        GREETERS.make(name, "!")
    assert str(caught.value).startswith(message)


def test_a_name_two_packages_register_is_refused_not_guessed(site: Path) -> None:
    install(site, "impostor", "kit_impostor", GOOD, {"polite": "kit_impostor:Rude"})
    with pytest.raises(PluginError) as caught:
        GREETERS.make("polite", "!")
    assert str(caught.value) == (
        "--greeter: the greeter plug-in name 'polite' is registered by more than one installed "
        "package (greeters 1.0, impostor 1.0); uninstall all but one"
    )
    GREETERS.check("failing")  # the names only one package registers are unaffected


def test_members_are_what_the_protocol_declares() -> None:
    assert members(Greeter) == ["__enter__", "farewell", "greet", "prefix"]

    class Complete:
        prefix = "hi"

        def greet(self, name: str) -> str:
            return name

        async def farewell(self, name: str) -> str:
            return name

        def __enter__(self) -> Complete:
            return self

    assert unmet(Greeter, Complete()) == []
    assert unmet(Greeter, object()) == ["no __enter__", "no farewell", "no greet", "no prefix"]
