"""Benchmark of the function proxy (`baetyl-function`, DESIGN §9): what routing a call through it
costs against calling the runtime directly.

Real processes: two Python runtimes (`python -m function_proxy.runtime`) serving one async
function that answers its JSON event, a proxy reading a registry that lists one or both, and an
aiohttp client in this process sending `--requests` calls per case with 1 or `--clients`
concurrent callers (after a warm-up). *Direct* calls the runtime instances round-robin itself;
*proxy* calls `/{app}/{function}` on the proxy. Everything shares this machine's cores, the
client included, so throughput here is what two cores give all three together.
Run: `.venv/bin/python bench/function_proxy.py [--quick] [--requests N] [--out F.json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # before bench/ (the script's directory): bench/agent.py

from edgekit import percentiles  # noqa: E402
from provenance import provenance  # noqa: E402
from reportkit import sections  # noqa: E402

from tests.function_proxy.kit import started  # noqa: E402
from tests.harness.common import free_port  # noqa: E402
from tools.kit.waiting import eventually  # noqa: E402

Json = dict[str, Any]
APP = "bench"
HANDLER = "import os\n\n\nasync def echo(event, context):\n    return [event, os.getpid()]\n"
ADDED_P50_MS = 1.0
THROUGHPUT_SHARE = 0.70
WARMUP = 50


async def run_case(urls: list[str], clients: int, requests: int) -> Json:
    """`requests` calls spread over `clients` concurrent callers; rate and latency."""
    body = json.dumps({"n": 1, "text": "x" * 64}).encode()
    targets = itertools.cycle(urls)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> float:
            started = time.perf_counter()
            async with session.post(next(targets), data=body) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"{answer.status} from {answer.url}")
            return time.perf_counter() - started

        for _ in range(WARMUP):
            await one()
        samples: list[float] = []
        remaining = iter(range(requests))

        async def caller() -> None:
            for _ in remaining:
                samples.append(await one())

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latency = percentiles([s * 1000 for s in samples])
    return {
        "requests": len(samples),
        "seconds": elapsed,
        "rps": len(samples) / elapsed,
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
    }


async def _routes_to(proxy_port: int, instances: int) -> bool:
    """Whether calls through the proxy reach `instances` distinct runtimes."""
    seen: set[int] = set()
    async with aiohttp.ClientSession() as session:
        for _ in range(4 * instances):
            url = f"http://127.0.0.1:{proxy_port}/{APP}/echo"
            async with session.post(url, data=b"{}") as answer:
                if answer.status != 200:
                    return False
                seen.add(json.loads(await answer.read())[1])
    return len(seen) == instances


async def measure(requests: int, clients: int) -> list[Json]:
    """Every case: direct and proxied, 1 and 2 instances, 1 and `clients` callers."""
    cases: list[Json] = []
    with tempfile.TemporaryDirectory(prefix="baetyl-bench-function-") as work:
        root = Path(work)
        (root / "code").mkdir()
        (root / "code" / "index.py").write_text(HANDLER, encoding="utf-8")
        config = root / "function.json"
        config.write_text(
            json.dumps(
                {"functions": [{"name": "echo", "handler": "index.echo", "codedir": "code"}]}
            ),
            encoding="utf-8",
        )
        ports = [free_port(), free_port()]
        proxy_port = free_port()
        registry = root / "services.json"
        async with AsyncExitStack() as stack:
            for port in ports:
                argv = [sys.executable, "-m", "function_proxy.runtime", "--config", str(config)]
                env = {"BAETYL_SERVICE_DYNAMIC_PORT": str(port), "BAETYL_SERVICE_NAME": "echo"}
                log = root / f"runtime-{port}.log"
                await stack.enter_async_context(started(argv, port, log, env=env))
            binary = Path(sys.executable).parent / "baetyl-function"
            argv = [str(binary), "--registry", str(registry), "--listen",
                    f"127.0.0.1:{proxy_port}", "--log-level", "warning"]  # fmt: skip
            registry.write_text(json.dumps({APP: {"echo": []}}), encoding="utf-8")
            await stack.enter_async_context(started(argv, proxy_port, root / "proxy.log"))
            for instances in (1, 2):
                addresses = [f"127.0.0.1:{port}" for port in ports[:instances]]
                registry.write_text(json.dumps({APP: {"echo": addresses}}), encoding="utf-8")
                # The proxy re-reads the registry within 0.5 s: wait until it routes to them all.
                await eventually(
                    lambda n=instances: _routes_to(proxy_port, n),
                    limit=20,
                    what=f"the proxy routing to {instances} instance(s)",
                )
                for callers in (1, clients):
                    direct = [f"http://{address}/echo" for address in addresses]
                    proxied = [f"http://127.0.0.1:{proxy_port}/{APP}/echo"]
                    for path, urls in (("direct", direct), ("proxy", proxied)):
                        result = await run_case(urls, callers, requests)
                        cases.append(
                            {"path": path, "instances": instances, "clients": callers, **result}
                        )
                        print(
                            f"{path:>6} instances={instances} clients={callers:>2}: "
                            f"{result['rps']:7.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
                            f"p99 {result['p99_ms']:.2f} ms",
                            file=sys.stderr,
                        )
    return cases


def checks(cases: list[Json], clients: int) -> list[Json]:
    """Added latency at one caller, one instance; proxied throughput at `clients` callers."""

    def case(path: str, instances: int, callers: int) -> Json:
        (found,) = [
            c
            for c in cases
            if (c["path"], c["instances"], c["clients"]) == (path, instances, callers)
        ]
        return found

    added = case("proxy", 1, 1)["p50_ms"] - case("direct", 1, 1)["p50_ms"]
    shares = [
        case("proxy", instances, clients)["rps"] / case("direct", instances, clients)["rps"]
        for instances in (1, 2)
    ]
    return [
        {
            "target": f"added latency p50 < {ADDED_P50_MS:g} ms (1 caller, 1 instance)",
            "measured": f"{added:.2f} ms",
            "met": added < ADDED_P50_MS,
        },
        {
            "target": f"proxied throughput >= {THROUGHPUT_SHARE:.0%} of direct ({clients} callers)",
            "measured": " / ".join(f"{share:.0%}" for share in shares) + " (1 / 2 instances)",
            "met": min(shares) >= THROUGHPUT_SHARE,
        },
    ]


def main() -> int:
    """Measure, print the section, write `--out`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--requests", type=int, help="timed calls per case (3000; 200 with --quick)"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent callers (32)")
    parser.add_argument("--quick", action="store_true", help="a smoke-test size")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="write the results")
    args = parser.parse_args()
    requests = args.requests or (200 if args.quick else 3000)
    if requests < 1 or args.clients < 2:
        parser.error("--requests must be at least 1 and --clients at least 2")
    origin = provenance()
    cases = asyncio.run(measure(requests, args.clients))
    result = {
        "provenance": origin,
        "requests": requests,
        "clients": args.clients,
        "cases": cases,
        "checks": checks(cases, args.clients),
    }
    print(sections.function_proxy(result, None))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
