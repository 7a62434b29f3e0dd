"""A/B of the import's two paths on the same generated CSV: serial (read and validate, then
write) and streamed (a second process reads and validates while the write loads), in
interleaved rounds, each run in a fresh process on a fresh database. Prints per run the wall
time, the CPU seconds of the importing process, of the reading process and (PostGIS) of the
server's processes, and the peak resident memory of the importing and the reading process.

    python -m bench.import_ab --rows 300000 --backend postgis --rounds 2

The CSV comes from bench/out (see bench/import_bench.py). PostGIS: a database made for the
run on ``MAPSERVICE_BENCH_POSTGIS_URL`` (default the test server), dropped afterwards. A
SpatiaLite run's resident memory includes the pages of the database file it maps
(``sqlite_mmap_mb``): compare its processes' memory on PostGIS.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.import_bench import DEFAULT_POSTGIS, csv_file, fresh_store


def _server_cpu() -> float:
    """CPU seconds of every postgres process on this machine (a run's server backend and its
    parallel workers; the bench server has nothing else to do)."""
    out = subprocess.run(["ps", "-C", "postgres", "-o", "cputimes="], capture_output=True,
                         text=True, check=False).stdout.split()
    return float(sum(int(x) for x in out))


def one_run(path: Path, backend: str, streamed: bool, admin_url: str) -> dict[str, float]:
    """Import ``path`` once (in this process: run it in a fresh one)."""
    from importers import ImportOptions, pipeline, run_import
    from importers.pipeline import gazetteer_geocoder

    pipeline.PARALLEL_MIN_BYTES = 0 if streamed else 1 << 62
    with fresh_store(backend, admin_url, "ab") as store:
        server = _server_cpu() if backend == "postgis" else 0.0
        started = time.perf_counter()
        report = run_import(store, path, ImportOptions(
            source="bench", region_bbox=(9.6, 53.3, 10.4, 53.8)), geocoder=gazetteer_geocoder)
        wall = time.perf_counter() - started
        server = _server_cpu() - server if backend == "postgis" else 0.0
    me, child = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    return {"wall_s": round(wall, 1), "created": report.created,
            "cpu_importer_s": round(me.ru_utime + me.ru_stime, 1),
            "cpu_reader_s": round(child.ru_utime + child.ru_stime, 1),
            "cpu_server_s": server,
            "peak_rss_importer_mb": me.ru_maxrss // 1024,
            "peak_rss_reader_mb": child.ru_maxrss // 1024 if streamed else 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=("postgis", "spatialite"), default="postgis")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", choices=("serial", "streamed"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    admin_url = os.environ.get("MAPSERVICE_BENCH_POSTGIS_URL", DEFAULT_POSTGIS)
    path = csv_file(args.rows, args.seed)
    if args.one:  # a child run: print its figures as JSON
        print(json.dumps(one_run(path, args.backend, args.one == "streamed", admin_url)))
        return 0
    print(f"import A/B: {args.rows:,} rows into {args.backend}, {args.rounds} round(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    for round_ in range(1, args.rounds + 1):
        for mode in ("serial", "streamed"):
            done = subprocess.run(
                [sys.executable, "-m", "bench.import_ab", "--rows", str(args.rows), "--seed",
                 str(args.seed), "--backend", args.backend, "--one", mode],
                capture_output=True, text=True, check=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  round {round_} {mode:<8} wall {figures['wall_s']:6.1f} s   CPU s: importer "
                  f"{figures['cpu_importer_s']:5.1f}, reader {figures['cpu_reader_s']:5.1f}, "
                  f"server {figures['cpu_server_s']:5.1f}   peak RSS MB: importer "
                  f"{figures['peak_rss_importer_mb']}, reader {figures['peak_rss_reader_mb']}",
                  flush=True)
    print(f"  (load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
