"""The engine tests use the native backend's fixtures: per-test directories, backends cleaned up."""

from __future__ import annotations

from tests.agent.core.native.conftest import backends, dirs

__all__ = ["backends", "dirs"]
