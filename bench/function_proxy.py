"""Benchmark of the function proxy (`baetyl-function`, DESIGN §9): what routing a call through it
costs against calling the runtime directly.

Real processes: two Python runtimes (`python -m function_proxy.runtime`) serving one async
function that answers its JSON event, a proxy reading a registry that lists one or both, and an
aiohttp client in this process sending `--requests` calls per case with 1 or `--clients`
concurrent callers (after a warm-up). *Direct* calls the runtime instances round-robin itself;
*proxy* calls `/{app}/{function}` on the proxy. Everything shares this machine's cores, the
client included, so throughput here is what two cores give all three together. Each case runs
`--rounds` times, direct and proxied alternating, so that both meet the same background load:
throughput is the median round, the share proxied/direct the median of the rounds' ratios, and
the CPU time the proxy and the runtimes spend per call is read from the kernel each round.
Run: `.venv/bin/python bench/function_proxy.py [--quick] [--requests N] [--rounds R]
[--out F.json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import psutil

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


async def run_case(
    urls: list[str], clients: int, requests: int, watched: list[list[psutil.Process]]
) -> Json:
    """`requests` calls spread over `clients` concurrent callers; rate, latency, and the CPU
    time each group of `watched` processes spent per call."""
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

        cpu_before = [_cpu_seconds(group) for group in watched]
        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        cpu = [
            _cpu_seconds(group) - before for group, before in zip(watched, cpu_before, strict=True)
        ]
    return {
        "requests": len(samples),
        "seconds": elapsed,
        "rps": len(samples) / elapsed,
        "samples_ms": [s * 1000 for s in samples],
        "cpu_us_per_call": [seconds / len(samples) * 1e6 for seconds in cpu],
    }


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system CPU time the processes have used so far."""
    return sum(sum(process.cpu_times()[:2]) for process in processes)


async def run_rounds(
    paths: dict[str, list[str]], clients: int, requests: int, rounds: int,
    watched: list[list[psutil.Process]],
) -> dict[str, Json]:  # fmt: skip
    """Each path `rounds` times, alternating; per path the median round and pooled latency."""
    runs: dict[str, list[Json]] = {path: [] for path in paths}
    for _ in range(rounds):
        for path, urls in paths.items():
            runs[path].append(await run_case(urls, clients, requests, watched))
    results: dict[str, Json] = {}
    for path, done in runs.items():
        latency = percentiles([ms for run in done for ms in run["samples_ms"]])
        results[path] = {
            "requests": requests,
            "rounds": len(done),
            "rps": statistics.median(run["rps"] for run in done),
            "rps_rounds": [run["rps"] for run in done],
            "p50_ms": latency["p50"],
            "p99_ms": latency["p99"],
            "runtime_cpu_us": statistics.median(run["cpu_us_per_call"][0] for run in done),
            "proxy_cpu_us": statistics.median(run["cpu_us_per_call"][1] for run in done),
        }
    return results


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


async def measure(requests: int, clients: int, rounds: int) -> list[Json]:
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
            runtimes: list[psutil.Process] = []
            for port in ports:
                argv = [sys.executable, "-m", "function_proxy.runtime", "--config", str(config)]
                env = {"BAETYL_SERVICE_DYNAMIC_PORT": str(port), "BAETYL_SERVICE_NAME": "echo"}
                log = root / f"runtime-{port}.log"
                running = await stack.enter_async_context(started(argv, port, log, env=env))
                runtimes.append(psutil.Process(running.process.pid))
            binary = Path(sys.executable).parent / "baetyl-function"
            argv = [str(binary), "--registry", str(registry), "--listen",
                    f"127.0.0.1:{proxy_port}", "--log-level", "warning"]  # fmt: skip
            registry.write_text(json.dumps({APP: {"echo": []}}), encoding="utf-8")
            proxy = await stack.enter_async_context(started(argv, proxy_port, root / "proxy.log"))
            watched = [runtimes, [psutil.Process(proxy.process.pid)]]
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
                    paths = {
                        "direct": [f"http://{address}/echo" for address in addresses],
                        "proxy": [f"http://127.0.0.1:{proxy_port}/{APP}/echo"],
                    }
                    results = await run_rounds(paths, callers, requests, rounds, watched)
                    for path, result in results.items():
                        cases.append(
                            {"path": path, "instances": instances, "clients": callers, **result}
                        )
                        print(
                            f"{path:>6} instances={instances} clients={callers:>2}: "
                            f"{result['rps']:7.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
                            f"p99 {result['p99_ms']:.2f} ms  CPU/call: runtime "
                            f"{result['runtime_cpu_us']:.0f} us, "
                            f"proxy {result['proxy_cpu_us']:.0f} us",
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
        statistics.median(
            proxied / direct
            for proxied, direct in zip(
                case("proxy", instances, clients)["rps_rounds"],
                case("direct", instances, clients)["rps_rounds"],
                strict=True,
            )
        )
        for instances in (1, 2)
    ]
    return [
        {
            "target": f"added latency p50 < {ADDED_P50_MS:g} ms (1 caller, 1 instance)",
            "measured": f"{added:.2f} ms",
            "met": added < ADDED_P50_MS,
        },
        {
            "target": f"proxied throughput >= {THROUGHPUT_SHARE:.0%} of direct ({clients} callers, "
            "median of the rounds' ratios)",
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
    parser.add_argument(
        "--rounds", type=int, help="rounds per case, direct and proxied alternating (5; 1 quick)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke-test size")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="write the results")
    args = parser.parse_args()
    requests = args.requests or (200 if args.quick else 3000)
    rounds = args.rounds or (1 if args.quick else 5)
    if requests < 1 or args.clients < 2 or rounds < 1:
        parser.error("--requests and --rounds must be at least 1 and --clients at least 2")
    origin = provenance()
    cases = asyncio.run(measure(requests, args.clients, rounds))
    result = {
        "provenance": origin,
        "requests": requests,
        "rounds": rounds,
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
