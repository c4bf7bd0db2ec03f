"""Plug-ins found by name through Python entry points: one group per replaceable part.

Each plug-in point is the entry-point group `baetyl_py.plugins.<point>`; each entry names a
factory (a class or a function) under the name configuration chooses it by. The built-in
implementations are registered in setup.cfg the same way, so the product has one path to every
implementation and a third party's package adds one by being installed (docs/plugins.md).
Listing the names reads package metadata only; nothing is imported until a name is chosen and
made, so no registry fills itself at import time.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final, Generic, TypeVar

from agent.contracts.field_names import closest

GROUP_PREFIX: Final = "baetyl_py.plugins."
DOCS: Final = "docs/plugins.md"

T = TypeVar("T")

# What a Protocol class holds besides the members it declares (typing's own bookkeeping).
_NOT_MEMBERS: Final = frozenset(
    {
        "__abstractmethods__",
        "__annotations__",
        "__class_getitem__",
        "__dict__",
        "__doc__",
        "__firstlineno__",
        "__init__",
        "__init_subclass__",
        "__module__",
        "__new__",
        "__non_callable_proto_members__",
        "__orig_bases__",
        "__parameters__",
        "__protocol_attrs__",
        "__qualname__",
        "__slots__",
        "__static_attributes__",
        "__subclasshook__",
        "__type_params__",
        "__weakref__",
    }
)


class PluginError(Exception):
    """A plug-in that cannot be used: an unknown name, a failing import or set-up, or an object
    that lacks what its point needs. The message names the plug-in and what to do."""


@dataclass(frozen=True)
class PluginPoint(Generic[T]):
    """One replaceable part of the product.

    Attributes:
        point: the last part of the entry-point group (`auth` → `baetyl_py.plugins.auth`).
        what: what messages call one of its plug-ins ("authentication plug-in").
        protocol: the `typing.Protocol` class a plug-in's object must satisfy; checked when the
            object is made (every member present, `async def` where the protocol says so).
        setting: where the name is chosen (`--auth`, `sync.link`), for messages.
    """

    point: str
    what: str
    protocol: type[Any]
    setting: str

    @property
    def group(self) -> str:
        """The entry-point group: `baetyl_py.plugins.<point>`."""
        return GROUP_PREFIX + self.point

    def names(self) -> list[str]:
        """The names of the installed plug-ins, sorted."""
        return sorted({entry.name for entry in metadata.entry_points(group=self.group)})

    def check(self, name: str) -> None:
        """PluginError unless exactly one installed package registers `name` (the message
        lists the installed names and suggests the closest)."""
        self._entry(name)

    def make(self, name: str, *args: Any) -> T:
        """Import the plug-in `name`, call its factory with `args` and check what it made."""
        entry = self._entry(name)
        label = f"{self.what} {name!r} ({entry.value})"
        try:
            factory = entry.load()
        except Exception as exc:  # a third party's module: whatever it raises is its failure
            raise PluginError(f"{label} cannot be imported: {exc}") from exc
        if not callable(factory):
            raise PluginError(f"{label} is not a class or a function")
        try:
            made: T = factory(*args)
        except PluginError:
            raise
        except Exception as exc:  # set-up failures are the plug-in's, told as such
            raise PluginError(f"{label} could not be set up: {exc}") from exc
        missing = unmet(self.protocol, made)
        if missing:
            raise PluginError(
                f"{label} does not implement {self.protocol.__name__}: {'; '.join(missing)} "
                f"({DOCS})"
            )
        return made

    def _entry(self, name: str) -> metadata.EntryPoint:
        entries = list(metadata.entry_points(group=self.group, name=name))
        if not entries:
            installed = self.names()
            close = closest(name, installed)
            hint = f"; did you mean {close!r}?" if close else ""
            raise PluginError(
                f"{self.setting}: no {self.what} named {name!r} is installed{hint} (installed: "
                f"{', '.join(installed) or 'none'}; entry-point group {self.group}, {DOCS})"
            )
        sources = sorted({_source(entry) for entry in entries})
        if len(entries) > 1:
            # Two packages claiming one name: taking either would be a guess, and a package
            # that shadows a built-in (say the token check) must not win silently.
            raise PluginError(
                f"{self.setting}: the {self.what} name {name!r} is registered by more than one "
                f"installed package ({', '.join(sources)}); uninstall all but one"
            )
        return entries[0]


def members(protocol: type[Any]) -> list[str]:
    """The members a Protocol class declares (methods, properties, attributes), sorted."""
    found: set[str] = set()
    for base in protocol.__mro__:
        if base is object or base.__module__ == "typing":
            continue  # object, Protocol, Generic
        found.update(
            name for name in [*vars(base), *getattr(base, "__annotations__", {})] if _declared(name)
        )
    return sorted(found)


def _declared(name: str) -> bool:
    """Whether a name in a Protocol's body is a member (public, or a dunder such as
    `__enter__`), not typing's bookkeeping."""
    if name in _NOT_MEMBERS:
        return False
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def unmet(protocol: type[Any], made: object) -> list[str]:
    """What `made` lacks of `protocol`: each missing member, and each member the protocol
    declares `async def` that is not a coroutine function (awaiting it would fail per call)."""
    problems: list[str] = []
    for name in members(protocol):
        if not hasattr(made, name):
            problems.append(f"no {name}")
            continue
        declared = inspect.getattr_static(protocol, name, None)
        if inspect.iscoroutinefunction(declared) and not inspect.iscoroutinefunction(
            getattr(made, name)
        ):
            problems.append(f"{name} must be a coroutine function (async def)")
        elif inspect.isfunction(declared) and not callable(getattr(made, name)):
            problems.append(f"{name} must be a method")
    return problems


def _source(entry: metadata.EntryPoint) -> str:
    dist = entry.dist
    return f"{dist.name} {dist.version}" if dist is not None else entry.value
