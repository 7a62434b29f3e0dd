"""In-process timing of ``Store.search`` (no HTTP) on PostGIS and SpatiaLite, and of GeoJSON
serialisation of 1,000-feature pages; optionally against another version of the code.

Loads N synthetic resources (:func:`bench.generate.records`, default 100k) into each backend
with ``Store.bulk_upsert`` (PostGIS: its own database on ``--postgis-url``; SpatiaLite: a file
under ``bench/out/``), then times, after a warm-up, ``Store.search`` for the workloads of
:mod:`bench.search_bench` (the queries the HTTP benchmark sends):

- ``nearest-10``: ``near=`` random points inside Hamburg, ``limit=10``;
- ``nearest-10-cat``: the same with a random ``category``;
- ``bbox-1000``: boxes around random resources holding >= 1,050 resources, ``limit=1000``;
- ``text``: ``q=`` a common word of the generated names, ``limit=10``;

and ``geojson-1000``: ``geojson.feature_collection`` + ``orjson.dumps`` (with the API's
option) of 20 bbox pages, in features per CPU-second of the thread (= per core).

Each code version runs in a worker process of its own (``--compare DIR`` adds one that
imports ``mapservice`` from DIR, e.g. a copy of the code before a change). The workers take
turns in blocks of ``--block`` searches, so both see the same background load (the machine is
shared); each row records the load average. Besides wall time the table shows the CPU time of
the searching thread (Python, driver and SQLite; not the PostgreSQL server), which the load
disturbs less.

    python -m bench.store_profile --rows 100000 --keep --compare /tmp/before
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DEFAULT_POSTGIS_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SOURCE = "bench"
# DESIGN.md budgets for the in-process ("DB") p95 in ms, and for serialisation.
BUDGETS = {("postgis", "nearest-10"): 1.0, ("spatialite", "nearest-10"): 2.0}
GEOJSON_BUDGET = 300_000  # features/s per core


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backends", default="postgis,spatialite")
    parser.add_argument("--requests", type=int, default=2000,
                        help="timed searches per small workload and version (%(default)s)")
    parser.add_argument("--bbox-requests", type=int, default=200,
                        help="timed bbox-1000 searches per version (%(default)s)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--block", type=int, default=100,
                        help="searches per turn when versions alternate (%(default)s)")
    parser.add_argument("--postgis-url", default=os.environ.get("MAPSERVICE_BENCH_POSTGIS_URL",
                                                                DEFAULT_POSTGIS_URL),
                        help="server (admin URL) for the benchmark database")
    parser.add_argument("--keep", action="store_true",
                        help="keep the benchmark databases; a later run reuses them")
    parser.add_argument("--compare", type=Path, metavar="DIR",
                        help="also time the mapservice package found in DIR")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a database URL
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---- databases -------------------------------------------------------------------------------
def _name(backend: str, rows: int) -> str:
    return (f"mapservice_store_profile_{rows}" if backend == "postgis"
            else str(OUT / f"store-profile-{rows}.sqlite"))


def _database(args: argparse.Namespace, backend: str) -> str:
    """The URL of the benchmark database of ``backend``, created and loaded when it does
    not hold ``--rows`` resources yet."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from mapservice.db import make_engine

    name = _name(backend, args.rows)
    if backend == "postgis":
        admin = create_engine(args.postgis_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).first() is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        url = make_url(args.postgis_url).set(database=name).render_as_string(
            hide_password=False)
    else:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{name}"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            count = conn.exec_driver_sql(
                "SELECT count(*) FROM resource WHERE status = 'published'").scalar()
    except Exception:  # noqa: BLE001 - no schema yet
        count = 0
    finally:
        engine.dispose()
    if count >= args.rows * 0.99:
        return url
    if count:
        raise SystemExit(f"{url} holds {count} resources, not {args.rows}: drop it first")
    print(f"[{backend}] loading {args.rows} resources ...", file=sys.stderr, flush=True)
    _load(url, args.rows, args.seed)
    return url


def _load(url: str, rows: int, seed: int) -> None:
    from bench.generate import records
    from bench.search_bench import analyse
    from mapservice import migrate
    from mapservice.db import make_engine
    from mapservice.store import make_store

    engine = make_engine(url, statement_timeout_ms=0)
    try:
        migrate.upgrade(engine)
        make_store(engine).bulk_upsert(records(rows, seed), source=SOURCE, changed_by="bench")
        analyse(engine)
    finally:
        engine.dispose()


def _drop(args: argparse.Namespace, backend: str) -> None:
    from sqlalchemy import create_engine

    name = _name(backend, args.rows)
    if backend == "postgis":
        admin = create_engine(args.postgis_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    else:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)


def _points(url: str) -> Any:
    import numpy as np

    from mapservice.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT ST_X(geom), ST_Y(geom) FROM resource WHERE status = 'published' "
                "ORDER BY id").all()
    finally:
        engine.dispose()
    return np.asarray(rows, dtype=float)


# ---- worker: one code version, one database ----------------------------------------------------
def worker(url: str) -> int:
    """Answer JSON commands on stdin, one a line: ``search`` (params list, count, offset in
    the list, expected hits) -> latencies; ``geojson`` (params list) -> features/CPU-s."""
    import orjson

    from bench.search_bench import to_query
    from mapservice.db import make_engine
    from mapservice.geojson import feature_collection
    from mapservice.store import make_store

    engine = make_engine(url)
    store = make_store(engine)
    queries: dict[str, list[Any]] = {}
    print(json.dumps({"ready": str(Path(sys.modules["mapservice"].__file__).parent)}),
          flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "load":
            queries[cmd["name"]] = [to_query(p) for p in cmd["params"]]
            reply: dict[str, Any] = {}
        elif cmd["op"] == "search":
            qs = queries[cmd["name"]]
            wall, cpu = [], []
            for i in range(cmd["start"], cmd["start"] + cmd["count"]):
                query = qs[i % len(qs)]
                c = time.thread_time_ns()
                s = time.perf_counter_ns()
                result = store.search(query)
                wall.append(time.perf_counter_ns() - s)
                cpu.append(time.thread_time_ns() - c)
                if len(result.hits) != cmd["expect"]:
                    raise SystemExit(f"{len(result.hits)} hits, expected {cmd['expect']}: "
                                     f"{query}")
            reply = {"wall": wall, "cpu": cpu}
        elif cmd["op"] == "geojson":
            pages = [store.search(q).hits for q in queries[cmd["name"]][:20]]
            option = orjson.OPT_NON_STR_KEYS
            spent, features = [], 0
            for _ in range(cmd["rounds"]):
                for hits in pages:
                    c = time.thread_time_ns()
                    orjson.dumps(feature_collection(hits, numberReturned=len(hits), links=[]),
                                 option=option)
                    spent.append(time.thread_time_ns() - c)
                    features += len(hits)
            reply = {"features": features, "cpu": spent}
        else:
            break
        print(json.dumps(reply), flush=True)
    engine.dispose()
    return 0


class Worker:
    """A worker process we started (see :func:`worker`), stopped by closing its stdin."""

    def __init__(self, label: str, url: str, code: Path | None) -> None:
        cmd = [sys.executable, "-m", "bench.store_profile", "--worker", url]
        if code is not None:
            cmd += ["--code", str(code.resolve())]
        self.label = label
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.source = self._read()["ready"]

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.label} exited with {self.proc.wait()}")
        return json.loads(line)

    def ask(self, **cmd: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(60)


# ---- driver ------------------------------------------------------------------------------------
def _summary(wall: list[int], cpu: list[int], loads: list[float]) -> dict[str, Any]:
    from bench.search_bench import percentile

    w = sorted(v / 1e6 for v in wall)
    c = sorted(v / 1e6 for v in cpu)
    return {"n": len(w), "p50_ms": round(percentile(w, 50), 3),
            "p95_ms": round(percentile(w, 95), 3), "p99_ms": round(percentile(w, 99), 3),
            "cpu_p50_ms": round(percentile(c, 50), 3), "cpu_p95_ms": round(percentile(c, 95), 3),
            "load": round(sum(loads) / len(loads), 2)}


def profile(args: argparse.Namespace, backend: str, url: str, loads: list[Any]
            ) -> dict[str, Any]:
    from bench.search_bench import loadavg

    versions = [("after", None)] + ([("before", args.compare)] if args.compare else [])
    workers = [Worker(label, url, code) for label, code in versions]
    out: dict[str, Any] = {w.label: {"code": w.source, "search": {}} for w in workers}
    try:
        for wl in loads:
            if wl.name.startswith("ogc-"):
                continue  # the same store call as bbox-1000
            print(f"[{backend}] {wl.name} ...", file=sys.stderr, flush=True)
            bbox = wl.name == "bbox-1000"
            total = args.bbox_requests if bbox else args.requests
            block = max(args.block // 10, 1) if bbox else args.block
            warmup = max(args.warmup // 10, 1) if bbox else args.warmup
            got = {w.label: ([], [], []) for w in workers}
            for w in workers:
                w.ask(op="load", name=wl.name, params=wl.params)
                w.ask(op="search", name=wl.name, start=0, count=warmup, expect=wl.expect)
            done = 0
            while done < total:
                count = min(block, total - done)
                for w in workers:
                    reply = w.ask(op="search", name=wl.name, start=warmup + done, count=count,
                                  expect=wl.expect)
                    wall, cpu, load = got[w.label]
                    wall += reply["wall"]
                    cpu += reply["cpu"]
                    load.append(loadavg()[0])
                done += count
            for label, (wall, cpu, load) in got.items():
                out[label]["search"][wl.name] = _summary(wall, cpu, load)
        bbox = next(wl for wl in loads if wl.name == "bbox-1000")
        for _round in range(3):
            for w in workers:
                reply = w.ask(op="geojson", name=bbox.name, rounds=2)
                entry = out[w.label].setdefault("geojson-1000", {"features": 0, "cpu": []})
                entry["features"] += reply["features"]
                entry["cpu"] += reply["cpu"]
        for label in out:
            entry = out[label]["geojson-1000"]
            spent = sorted(entry.pop("cpu"))
            entry["features_per_cpu_s"] = round(entry.pop("features") / (sum(spent) / 1e9))
            entry["page_p50_ms"] = round(spent[len(spent) // 2] / 1e6, 2)
            entry["load"] = loadavg()[0]
    finally:
        for w in workers:
            w.stop()
    return out


def table(results: dict[str, Any]) -> str:
    head = (f"{'version':<8} {'rows':>8} {'backend':<10} {'workload':<15} {'n':>5} "
            f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'cpu p95':>8} "
            f"{'budget':>6}  load")
    lines = [head, "-" * len(head)]
    for backend, versions in results["backends"].items():
        for label, run in versions.items():
            for name, s in run["search"].items():
                budget = BUDGETS.get((backend, name), "")
                lines.append(f"{label:<8} {results['rows']:>8} {backend:<10} {name:<15} "
                             f"{s['n']:>5} {s['p50_ms']:>8.3f} {s['p95_ms']:>8.3f} "
                             f"{s['p99_ms']:>8.3f} {s['cpu_p50_ms']:>8.3f} "
                             f"{s['cpu_p95_ms']:>8.3f} {budget:>6}  {s['load']}")
            g = run["geojson-1000"]
            lines.append(f"{label:<8} {results['rows']:>8} {backend:<10} {'geojson-1000':<15} "
                         f"{g['features_per_cpu_s']:>,} features/CPU-s (budget >= "
                         f"{GEOJSON_BUDGET:,}), page p50 {g['page_p50_ms']} ms  {g['load']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.code is not None:
        sys.path.insert(0, str(args.code))
    if args.worker:
        return worker(args.worker)
    from bench.search_bench import workloads
    from mapservice.taxonomy import default as default_taxonomy

    backends = [b for b in args.backends.split(",") if b]
    urls = {backend: _database(args, backend) for backend in backends}
    loads, facts = workloads(_points(urls[backends[0]]), sorted(default_taxonomy().categories),
                             args.requests, args.bbox_requests, args.seed + args.rows)
    results: dict[str, Any] = {"argv": sys.argv[1:], "rows": args.rows, "workload": facts,
                               "backends": {}}
    try:
        for backend in backends:
            results["backends"][backend] = profile(args, backend, urls[backend], loads)
    finally:
        if not args.keep:
            for backend in backends:
                _drop(args, backend)
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
