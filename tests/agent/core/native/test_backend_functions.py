"""Function apps on the native backend: a function service runs the Python runtime over the
code of its configuration (agent/core/functions.py), is published in the registry with its
function index, answers through the real `baetyl-function`, and a handler that cannot load is
the app's cause."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.contracts.report import AppStatus
from agent.contracts.resources import Application
from agent.contracts.wire import validate
from agent.core.backend import DeployError
from tests.agent.core.native.conftest import BackendFactory
from tests.agent.core.native.kit import Dirs, deployment
from tests.function_proxy.kit import call, free_port, proxy
from tools.kit.waiting import eventually

CODE = {
    "index.py": (
        "import os\n"
        "from helpers import shout\n\n"
        "def greet(event, context):\n"
        "    return {'hello': shout(event['name']), 'fn': context['functionName'],\n"
        "            'service': context['serviceName'], 'pid': os.getpid()}\n\n"
        "async def count(event, context):\n"
        "    return len(event)\n"
    ),
    "helpers.py": "def shout(text):\n    return text.upper()\n",
}


def function_app(name: str = "fn", version: str = "1", **service: Any) -> Application:
    spec = {
        "name": name,
        "version": version,
        "mode": "native",
        "type": "function",
        "services": [
            {
                "name": "py",
                "functionConfig": {"name": "fn-code", "runtime": "python36"},
                "functions": [
                    {"name": "greet", "handler": "index.greet"},
                    {"name": "count", "handler": "index.count", "codedir": "."},
                ],
                "replica": 2,
                **service,
            }
        ],
    }
    return validate(Application, spec)


async def test_a_function_app_runs_the_runtime_and_answers_through_the_proxy(
    backends: BackendFactory, dirs: Dirs, tmp_path: Path
) -> None:
    backend = backends(port_range=(50300, 50400))
    await backend.start()
    app = function_app()
    assert [kind.value for kind, ref in app.references()] == ["configuration"]
    await backend.apply(deployment(app, configs={"fn-code": CODE}))

    def published() -> dict[str, Any] | None:
        try:
            registry = json.loads(dirs.registry.read_text())
        except (OSError, ValueError):
            return None
        return registry if len(registry.get("fn", {}).get("py", [])) == 2 else None

    await eventually(published, limit=30, what="both runtime instances published")
    index = json.loads(dirs.registry.with_name("functions.json").read_text())
    assert index == {"fn": {"greet": "py", "count": "py"}}
    async with (
        proxy(dirs.registry, free_port(), tmp_path / "proxy.log") as running,
        aiohttp.ClientSession() as session,
    ):

        async def greeted() -> dict[str, Any] | None:
            status, body, _ = await call(
                session, "POST", f"{running.url}/fn/greet", b'{"name": "edge"}'
            )
            return json.loads(body) if status == 200 else None

        answer = await eventually(greeted, limit=30, what="the function answering")
        assert (answer["hello"], answer["fn"], answer["service"]) == ("EDGE", "greet", "py")
        pids = {(await greeted() or {}).get("pid") for _ in range(4)}
        assert len(pids) == 2  # both instances, round-robin
        status, body, _ = await call(session, "POST", f"{running.url}/fn", b'{"name": "a"}')
        assert (status, json.loads(body)["fn"]) == (200, "greet")  # `/{app}`: the first
        status, body, _ = await call(session, "POST", f"{running.url}/fn/count", b"[1, 2, 3]")
        assert (status, json.loads(body)) == (200, 3)
        status, body, _ = await call(session, "POST", f"{running.url}/fn/nope")
        assert (status, json.loads(body)["errCode"]) == (404, "ErrFunctionNotFound")
    await backend.remove("fn")
    await eventually(
        lambda: json.loads(dirs.registry.with_name("functions.json").read_text()) == {},
        limit=10,
        what="the index emptied",
    )


async def test_a_handler_that_cannot_load_is_the_apps_cause(
    backends: BackendFactory,
) -> None:
    backend = backends(port_range=(50400, 50500))
    await backend.start()
    app = function_app(functions=[{"name": "greet", "handler": "index.missing"}], replica=1)
    await backend.apply(deployment(app, configs={"fn-code": CODE}))

    def failing() -> str | None:
        stats = backend.observe().get("fn")
        if stats is None or (stats.status is not AppStatus.FAILED and "exit" not in stats.cause):
            return None
        return stats.cause or None

    cause = await eventually(failing, limit=30, what="the app failing with a cause")
    assert "index has no callable missing" in cause


@pytest.mark.parametrize(
    ("service", "configs", "expected"),
    [
        ({}, {}, "code configuration fn-code was not delivered"),
        (
            {"functions": [{"name": "greet", "handler": "index.greet", "codedir": "../up"}]},
            {"fn-code": CODE},
            "must be a path inside the code configuration",
        ),
    ],
)
async def test_function_specs_the_backend_cannot_run_are_refused(
    backends: BackendFactory, service: dict[str, Any], configs: dict[str, Any], expected: str
) -> None:
    backend = backends()
    await backend.start()
    with pytest.raises(DeployError, match=expected):
        await backend.apply(deployment(function_app(**service), configs=configs))
    assert backend.observe() == {}
