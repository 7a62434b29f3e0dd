"""A/B over HTTP: the same nearest-10 requests against two checkouts of mapservice serving the
same database, in alternating blocks, one client.

The shared 2-core host changes speed by up to 2x within an hour, so figures of two separate
benchmark runs cannot show a change of 10-20 %; interleaved blocks put both versions through
the same periods. Each checkout is served by ``mapservice serve --workers 2`` from
its own directory (``python -m mapservice`` imports the checkout's package).

    git worktree add /tmp/base <commit>
    python -m bench.ab_http postgresql+psycopg://postgres@127.0.0.1:5499/mapservice_bench_search_1000000 \
        /tmp/base . --blocks 10 --per-block 400
"""
from __future__ import annotations

import argparse
import http.client
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from .search_bench import HOST, free_port


def serve(cmd: list[str], url: str, cwd: Path, **env: str) -> tuple[subprocess.Popen, int]:
    """Start ``cmd`` (``{port}`` in it: a free loopback port) serving database ``url`` from
    ``cwd`` in its own process group; return once it answers, with its port."""
    port = free_port()
    environ = dict(os.environ, MAPSERVICE_DATABASE_URL=url, MAPSERVICE_SECRET_KEY="bench-only",
                   MAPSERVICE_INSTANCE_DIR=str(cwd / "bench" / "out" / "instance"), **env)
    proc = subprocess.Popen([part.format(port=port) for part in cmd], cwd=cwd, env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/api/v1/resources?limit=1")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, port
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit(f"{' '.join(cmd[:3])} in {cwd}: not serving after 60 s")


def interleaved(names: list[str], run: Callable[[str, int, int], list[float]], blocks: int,
                per_block: int) -> dict[str, list[float]]:
    """Latencies of ``run(name, start, n)`` for each name, in ``blocks`` blocks of
    ``per_block`` requests, the order of the names reversed every other block."""
    results: dict[str, list[float]] = {name: [] for name in names}
    for block in range(blocks):
        for name in names if block % 2 == 0 else names[::-1]:
            results[name] += run(name, block * per_block, per_block)
    return results


def print_percentiles(label: str, latencies: list[float]) -> None:
    lat = sorted(latencies)
    q = lambda f: lat[int(f * (len(lat) - 1))]  # noqa: E731
    print(f"{label} n={len(lat)} p50 {q(.5):.2f} p95 {q(.95):.2f} p99 {q(.99):.2f} ms")


def _serve(checkout: Path, url: str) -> tuple[subprocess.Popen, int]:
    return serve([sys.executable, "-m", "mapservice", "serve", "--host", HOST, "--port",
                  "{port}", "--workers", "2"], url, checkout, PYTHONPATH=str(checkout))


def _requests(port: int, points: list[tuple[float, float]], start: int, n: int) -> list[float]:
    latencies = []
    for i in range(start, start + n):
        lat, lon = points[i % len(points)]
        begin = time.perf_counter_ns()
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        conn.request("GET", f"/api/v1/resources?near={lat:.5f},{lon:.5f}&limit=10")
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status} from port {port}")
        latencies.append((time.perf_counter_ns() - begin) / 1e6)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the database both serve")
    parser.add_argument("a", type=Path, help="checkout A (e.g. a git worktree of the base)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--per-block", type=int, default=400)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    # uniform over the city's box: the edge (sparse, beside dense areas) included
    points = [(rng.uniform(53.45, 53.68), rng.uniform(9.8, 10.2)) for _ in range(2000)]
    servers = {"A": _serve(args.a.resolve(), args.url), "B": _serve(args.b.resolve(), args.url)}
    try:
        for _proc, port in servers.values():
            _requests(port, points, 0, 300)  # warm-up
        results = interleaved(
            ["A", "B"], lambda name, start, n: _requests(servers[name][1], points, start, n),
            args.blocks, args.per_block)
        for name, checkout in (("A", args.a), ("B", args.b)):
            print_percentiles(f"{name} {checkout}:", results[name])
    finally:
        for proc, _port in servers.values():
            os.killpg(proc.pid, signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit(main())
