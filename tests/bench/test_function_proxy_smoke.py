"""`bench/function_proxy.py --quick` end to end, so the benchmark cannot rot unnoticed: every
case answered every call, through the proxy and directly. Its figures are not checked against
the targets here."""

from __future__ import annotations

from tests.bench.conftest import Json


def test_the_function_proxy_benchmark_measures_every_case(function_proxy_results: Json) -> None:
    cases = function_proxy_results["cases"]
    assert sorted((c["path"], c["instances"], c["clients"]) for c in cases) == sorted(
        (path, instances, clients)
        for path in ("direct", "proxy")
        for instances in (1, 2)
        for clients in (1, 4)
    )
    for case in cases:
        assert case["requests"] == function_proxy_results["requests"]
        assert case["rps"] > 0
        assert 0 < case["p50_ms"] <= case["p99_ms"]
    assert [c["target"].split(" ")[0] for c in function_proxy_results["checks"]] == [
        "added",
        "proxied",
    ]
