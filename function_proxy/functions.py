"""A runtime's functions: the generated config that lists them, and their handlers, loaded.

The config is what the cloud generates for a function app's service (DESIGN §9):
`functions: [{name, handler: "module.func", codedir}]` in YAML or JSON. `codedir` is relative to
the config file's directory unless absolute; each function's module is imported from it once
(functions of one file share it), under a private name, so two functions may use modules of the
same name from different directories.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

Handler = Callable[[Any, dict[str, str]], Any]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_HANDLER = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*\.{_IDENTIFIER}")


class FunctionConfigError(Exception):
    """The config or a handler cannot be loaded; the message says which and why."""


@dataclass(frozen=True)
class FunctionSpec:
    """One function as the config lists it."""

    name: str
    handler: str
    codedir: Path


@dataclass(frozen=True)
class LoadedFunction:
    """A function ready to call: its handler, and whether that is a coroutine function."""

    spec: FunctionSpec
    call: Handler
    is_async: bool


def read_config(path: Path) -> list[FunctionSpec]:
    """The functions of the config file at `path`, checked; FunctionConfigError otherwise."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FunctionConfigError(f"cannot read the function config {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("functions"), list):
        raise FunctionConfigError(f"{path}: expected a mapping with a `functions` list")
    specs: list[FunctionSpec] = []
    for index, item in enumerate(document["functions"]):
        where = f"{path}: functions[{index}]"
        if not isinstance(item, dict):
            raise FunctionConfigError(f"{where}: expected a mapping with name, handler, codedir")
        name, handler, codedir = item.get("name"), item.get("handler"), item.get("codedir", ".")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise FunctionConfigError(f"{where}: name must be letters, digits, '-', '_', '.'")
        if not isinstance(handler, str) or not _HANDLER.fullmatch(handler):
            raise FunctionConfigError(
                f"{where}: handler must be `module.function` (e.g. index.handler), got {handler!r}"
            )
        if not isinstance(codedir, str) or not codedir:
            raise FunctionConfigError(f"{where}: codedir must be a directory path")
        directory = Path(codedir)
        if not directory.is_absolute():
            directory = path.parent / directory
        specs.append(FunctionSpec(name, handler, directory.resolve()))
    if not specs:
        raise FunctionConfigError(f"{path}: no functions listed")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise FunctionConfigError(f"{path}: function names repeat: {names}")
    return specs


_MODULES: dict[Path, ModuleType] = {}
"""Modules imported so far by source file: functions of one file share it (and its state)."""


def _import(spec: FunctionSpec, module_name: str, source: Path) -> ModuleType:
    """The module of `source`, imported once under a private name, so that files of the same
    name in different code directories stay apart."""
    if source in _MODULES:
        return _MODULES[source]
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    unique = f"_baetyl_function_{digest}_{module_name.replace('.', '_')}"
    module_spec = importlib.util.spec_from_file_location(unique, source)
    if module_spec is None or module_spec.loader is None:
        raise FunctionConfigError(f"function {spec.name}: cannot load {source}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[unique] = module
    sys.path.insert(0, str(spec.codedir))  # the handler's own imports of its neighbours
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[unique]
        raise FunctionConfigError(
            f"function {spec.name}: importing {source} failed: {type(exc).__name__}: {exc}"
        ) from exc
    _MODULES[source] = module
    return module


def load(spec: FunctionSpec) -> LoadedFunction:
    """Import the handler's module from the function's code directory; FunctionConfigError
    naming the function when the directory, the module or the callable is missing, or when the
    module fails to import (its own exception's text included)."""
    module_name, _, attribute = spec.handler.rpartition(".")
    if not spec.codedir.is_dir():
        raise FunctionConfigError(f"function {spec.name}: codedir {spec.codedir} does not exist")
    relative = Path(*module_name.split("."))
    candidates = [spec.codedir / f"{relative}.py", spec.codedir / relative / "__init__.py"]
    source = next((c for c in candidates if c.is_file()), None)
    if source is None:
        raise FunctionConfigError(
            f"function {spec.name}: handler {spec.handler}: no module {module_name} in "
            f"{spec.codedir}"
        )
    module = _import(spec, module_name, source)
    call = getattr(module, attribute, None)
    if not callable(call):
        raise FunctionConfigError(
            f"function {spec.name}: handler {spec.handler}: {module_name} has no callable "
            f"{attribute}"
        )
    return LoadedFunction(spec, call, inspect.iscoroutinefunction(call))
