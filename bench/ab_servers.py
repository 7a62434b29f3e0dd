"""A/B/C over HTTP: the same nearest-10 requests against one checkout served by different HTTP
servers (granian as ``mapservice serve`` runs it, gunicorn's sync and gthread workers), in
interleaved blocks, one client that keeps its connection where the server allows.

The question it answers: how much of a request's time is the server's. All variants serve the
same database with 2 worker processes; the interleaved blocks put them through the same
periods of the shared host (see bench/ab_http.py). gunicorn is not a dependency of mapservice:
``pip install gunicorn`` into the venv to include its variants (they are skipped otherwise).

    python -m bench.ab_servers postgresql+psycopg://postgres@127.0.0.1:5499/mapservice_bench_search_100000 \\
        --blocks 8 --per-block 300
"""
from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

from .ab_http import interleaved, print_percentiles, serve
from .search_bench import HOST, ROOT

APP = "mapservice:create_app()"


def _variants(threads: int) -> dict[str, list[str]]:
    bindir = Path(sys.executable).parent
    found: dict[str, list[str]] = {
        f"granian ({threads} threads/worker, mapservice serve)": [
            sys.executable, "-m", "mapservice", "serve", "--host", HOST, "--port", "{port}",
            "--workers", "2", "--threads", str(threads)]}
    gunicorn = shutil.which("gunicorn", path=str(bindir))
    if gunicorn:
        found["gunicorn sync"] = [gunicorn, "-w", "2", "-b", f"{HOST}:{{port}}", APP]
        found["gunicorn gthread (keep-alive)"] = [
            gunicorn, "-w", "2", "-k", "gthread", "--threads", str(threads), "--keep-alive", "30",
            "-b", f"{HOST}:{{port}}", APP]
    return found


def _requests(conn: http.client.HTTPConnection, points: list[tuple[float, float]], start: int,
              n: int) -> list[float]:
    latencies = []
    for i in range(start, start + n):
        lat, lon = points[i % len(points)]
        path = f"/api/v1/resources?near={lat:.5f},{lon:.5f}&limit=10"
        begin = time.perf_counter_ns()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()  # the server closed an idle kept-alive connection: open a new one
            begin = time.perf_counter_ns()
            conn.request("GET", path)
            response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status} for {path}")
        if response.will_close:
            conn.close()
        latencies.append((time.perf_counter_ns() - begin) / 1e6)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the database every variant serves")
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--per-block", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    points = [(rng.uniform(53.45, 53.68), rng.uniform(9.8, 10.2)) for _ in range(2000)]
    servers = {name: serve(cmd, args.url, ROOT) for name, cmd in _variants(args.threads).items()}
    conns = {name: http.client.HTTPConnection(HOST, port, timeout=10)
             for name, (_proc, port) in servers.items()}
    try:
        for name in servers:
            _requests(conns[name], points, 0, 300)  # warm-up
        results = interleaved(
            list(servers), lambda name, start, n: _requests(conns[name], points, start, n),
            args.blocks, args.per_block)
        for name, latencies in results.items():
            print_percentiles(f"{name:50s}", latencies)
    finally:
        for proc, _port in servers.values():
            os.killpg(proc.pid, signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit(main())
