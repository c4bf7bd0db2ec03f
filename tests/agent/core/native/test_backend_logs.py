"""App logs: written by the processes themselves, rotated by copy-truncate, read by the agent."""

from __future__ import annotations

import asyncio

from agent.core.native import NativeBackend
from tests.agent.core.native.conftest import BackendFactory
from tests.agent.core.native.kit import Dirs, application, deployment, service
from tools.kit.waiting import eventually

COUNTER = """
for n in range(1, 101):
    print(f'line {n} of', os.environ['BAETYL_SERVICE_NAME'], flush=True)
put('done', '')
time.sleep(600)
"""


async def test_logs_tail_the_last_lines_of_every_instance(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = backends()
    await backend.start()
    await backend.apply(deployment(application(services=[service(script=COUNTER)])))
    await eventually((dirs.instance("demo", "1") / "done").exists, what="output")

    text = await backend.logs("demo", tail_lines=3, since_seconds=None)
    assert text == "line 98 of main\nline 99 of main\nline 100 of main\n"
    whole = await backend.logs("demo", tail_lines=None, since_seconds=None)
    assert whole.count("\n") == 100

    await backend.apply(
        deployment(
            application(
                version="2",
                services=[service(script=COUNTER), service("aux", script=COUNTER)],
            )
        )
    )
    await eventually((dirs.instance("demo", "2", "aux") / "done").exists, what="aux")
    await eventually((dirs.instance("demo", "2") / "done").exists, what="main")
    text = await backend.logs("demo", tail_lines=1, since_seconds=None)
    assert text == "[aux-1] line 100 of aux\n[main-1] line 100 of main\n"


async def test_logs_rotate_by_size_and_the_app_keeps_writing(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = backends(log_max_bytes=2000, log_backups=2)
    await backend.start()
    script = """
    n = 0
    while True:
        n += 1
        print(f'entry {n:05d} ' + 'x' * 40, flush=True)
        if n % 20 == 0:
            time.sleep(0.05)
    """
    await backend.apply(deployment(application(services=[service(script=script)])))
    log = dirs.log / "default" / "demo" / "main-1.log"
    await eventually(lambda: log.with_name("main-1.log.2").exists(), what="two rotations")
    await asyncio.sleep(0.5)
    assert not log.with_name("main-1.log.3").exists()
    assert log.read_bytes()[:1] != b"\x00"  # appends land at the start after truncation
    first = log.with_name("main-1.log.1").read_text().splitlines()[0]
    newest = await backend.logs("demo", tail_lines=2, since_seconds=None)
    numbers = [int(line.split()[1]) for line in newest.splitlines()]
    assert numbers[1] == numbers[0] + 1
    assert numbers[0] > int(first.split()[1])  # newer than anything in the rotated copy
    assert _running(backend)


async def test_logs_since_seconds_leave_out_older_lines(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = backends()
    await backend.start()
    script = """
    print('early', flush=True)
    time.sleep(2.5)
    while True:
        print('late', flush=True)
        time.sleep(0.1)
    """
    await backend.apply(deployment(application(services=[service(script=script)])))
    log = dirs.log / "default" / "demo" / "main-1.log"
    await eventually(lambda: log.exists() and "late" in log.read_text(), what="late lines")
    recent = await backend.logs("demo", tail_lines=None, since_seconds=1)
    assert "late" in recent
    assert "early" not in recent
    everything = await backend.logs("demo", tail_lines=None, since_seconds=60)
    assert everything.startswith("early\n")


def _running(backend: NativeBackend) -> bool:
    stats = backend.observe()["demo"]
    return all(inst.pid is not None and inst.restarts == 0 for inst in stats.instances.values())
