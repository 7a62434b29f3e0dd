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
import subprocess
import sys
import time
from pathlib import Path

from .search_bench import HOST, ROOT, free_port

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


def _serve(cmd: list[str], url: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, MAPSERVICE_DATABASE_URL=url, MAPSERVICE_SECRET_KEY="bench-only",
               MAPSERVICE_INSTANCE_DIR=str(ROOT / "bench" / "out" / "instance"))
    proc = subprocess.Popen([part.format(port=port) for part in cmd], cwd=ROOT, env=env,
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
    raise SystemExit(f"{cmd[0]}: not serving after 60 s")


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
    servers = {name: _serve(cmd, args.url) for name, cmd in _variants(args.threads).items()}
    conns = {name: http.client.HTTPConnection(HOST, port, timeout=10)
             for name, (_proc, port) in servers.items()}
    try:
        for name in servers:
            _requests(conns[name], points, 0, 300)  # warm-up
        results: dict[str, list[float]] = {name: [] for name in servers}
        names = list(servers)
        for block in range(args.blocks):
            for name in names if block % 2 == 0 else names[::-1]:
                results[name] += _requests(conns[name], points, block * args.per_block,
                                           args.per_block)
        for name in names:
            lat = sorted(results[name])
            q = lambda f: lat[int(f * (len(lat) - 1))]  # noqa: E731
            print(f"{name:50s} n={len(lat)} p50 {q(.5):.2f} p95 {q(.95):.2f} "
                  f"p99 {q(.99):.2f} ms")
    finally:
        for proc, _port in servers.values():
            os.killpg(proc.pid, signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit(main())
