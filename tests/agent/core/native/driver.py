"""A stand-in agent for the kill test: a NativeBackend in its own process, driven over stdio.

`python -m tests.agent.core.native.driver ROOT [apply]` starts a backend on ROOT's directories
(adopting whatever runs), applies the test app if asked, prints `{"pids": {instance: pid}}` once
every instance runs, then waits for a line on stdin: `remove` removes the app (and prints
`removed`), anything else just closes the backend.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from agent.core.native import NativeBackend, NativeSettings
from tests.agent.core.native.kit import FAST, NODE, application, deployment


async def main(root: Path, apply: bool) -> None:
    settings = NativeSettings(
        run_dir=root / "run",
        log_dir=root / "log",
        state_dir=root / "state",
        registry_file=root / "services.json",
        grace_period=2.0,
        tuning=FAST,
    )
    backend = NativeBackend(NODE, settings)
    await backend.start()
    if apply:
        await backend.apply(deployment(application(replica=2)))
    while True:
        stats = backend.observe().get("demo")
        pids = {} if stats is None else {n: i.pid for n, i in stats.instances.items() if i.pid}
        if stats is not None and len(pids) == 2:
            break
        await asyncio.sleep(0.05)
    print(json.dumps({"pids": pids}), flush=True)
    command = await asyncio.to_thread(sys.stdin.readline)
    if command.strip() == "remove":
        await backend.remove("demo")
        print("removed", flush=True)
    await backend.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), apply=sys.argv[2:] == ["apply"]))
