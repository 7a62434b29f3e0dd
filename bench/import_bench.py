"""Import benchmark: rows/s of ``Store.bulk_upsert`` and of the whole import, against ogr2ogr.

For each backend (a fresh PostGIS database it creates and drops; a fresh SpatiaLite file):

1. ``bulk_upsert`` of N generated records already in memory (bench/generate.py, with
   coordinates: no geocoding) into the empty database — rows/s for the load (preparing and
   streaming the rows), the merge, the index build, and in total;
2. the same records again: the idempotent re-import (everything unchanged);
3. end to end: ``importers.pipeline.run_import`` on the generated CSV — exactly what
   ``mapservice import FILE`` runs (CSV reader, validation, bulk upsert, duplicate check) —
   into another fresh database, then once more (re-import), with the time split per step;
4. ogr2ogr (GDAL) loading the same CSV into the same kind of database, and the ratio
   ours / ogr2ogr.

    python -m bench.import_bench --rows 1000000 --backend both [--statements 10]

The CSV is cached under bench/out/ (gitignored). PostGIS: ``MAPSERVICE_BENCH_POSTGIS_URL``
(an admin URL of a server with PostGIS), default the test server. The machine's load average
is printed with the figures: on a shared machine it explains a lot.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url

from bench.generate import generate, records, write_csv
from mapservice import migrate
from mapservice.db import make_engine
from mapservice.store import Store, make_store

OUT = Path(__file__).resolve().parent / "out"
DEFAULT_POSTGIS = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SOURCE = "bench"


def csv_file(rows: int, seed: int) -> Path:
    """The generated CSV for ``rows``/``seed``, written once and cached."""
    path = OUT / f"resources-{rows}-s{seed}.csv"
    if not path.exists():
        started = time.perf_counter()
        write_csv(generate(rows, seed), path)
        print(f"  generated {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


@contextmanager
def postgis_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped afterwards."""
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"mapservice_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def spatialite_database(label: str) -> Iterator[str]:
    path = OUT / f"bench-{label}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def fresh_store(backend: str, admin_url: str, label: str) -> Iterator[Store]:
    """A store on a new database with the schema at head."""
    database = (postgis_database(admin_url) if backend == "postgis"
                else spatialite_database(label))
    with database as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            yield make_store(engine)
        finally:
            engine.dispose()


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>9,.0f} rows/s" if seconds > 0 else "        - rows/s"


def print_phases(label: str, rows: int, timings: dict[str, float], total: float) -> None:
    parts = "  ".join(f"{phase} {seconds:6.1f} s" for phase, seconds in timings.items())
    print(f"  {label:<34} {total:7.1f} s {_rate(rows, total)}   [{parts}]", flush=True)


@contextmanager
def statement_timer(engine: Engine) -> Iterator[list[tuple[float, str]]]:
    """Wall seconds of every SQL statement ``engine`` runs inside the block (COPY streams
    are not statements of the engine: they show in the *load* phase)."""
    timed: list[tuple[float, str]] = []

    def before(conn: Any, _cursor: Any, _statement: str, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        timed.append((time.perf_counter() - conn.info.pop("bench_started"),
                      " ".join(statement.split())))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield timed
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def bench_bulk(store: Store, recs: list[dict[str, Any]], result: dict[str, Any],
               statements: int = 0) -> None:
    """bulk_upsert into the empty database, then the same records again; with
    ``statements``, the slowest SQL statements of each run."""
    n = len(recs)
    for run in ("first load", "re-import (unchanged)"):
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with statement_timer(store.engine) as timed:
            report = store.bulk_upsert(recs, source=SOURCE, changed_by="bench",
                                       timings=timings)
        total = time.perf_counter() - started
        print_phases(f"bulk_upsert, {run}", n, timings, total)
        print(f"  {'':<34} created {report.created:,}, updated {report.updated:,}, "
              f"unchanged {report.unchanged:,}")
        slowest = sorted(timed, reverse=True)[:statements]
        for seconds, statement in slowest:
            print(f"  {'':<34} {seconds:7.2f} s  {statement[:110]}")
        load = timings.get("load", 0.0)
        rest = total - load
        result[run] = {"seconds": round(total, 2), "rows_per_s": round(n / total),
                       "phases_s": {k: round(v, 2) for k, v in timings.items()},
                       "load_rows_per_s": round(n / load) if load else None,
                       "after_load_rows_per_s": round(n / rest) if rest else None,
                       "created": report.created, "updated": report.updated,
                       "unchanged": report.unchanged}
        if slowest:
            result[run]["slowest_statements"] = [
                {"seconds": round(seconds, 2), "sql": statement[:300]}
                for seconds, statement in slowest]


class _TimedStore:
    """``store`` with the seconds spent in its write methods recorded (the rest of an import
    is reading, validating and deriving)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.seconds: dict[str, float] = {}
        self.timings: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name == "transaction":  # the import's one transaction: time its commit
            return self._timed_transaction(attr)
        if name not in ("bulk_upsert", "upsert", "flag_duplicates"):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            if name == "bulk_upsert":
                kwargs["timings"] = self.timings
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        return timed

    def _timed_transaction(self, transaction: Any) -> Any:
        @contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            manager = transaction(*args, **kwargs)
            conn = manager.__enter__()
            try:
                yield conn
            except BaseException:
                if not manager.__exit__(*sys.exc_info()):
                    raise
                return
            started = time.perf_counter()
            manager.__exit__(None, None, None)
            self.seconds["commit"] = time.perf_counter() - started
        return timed


def bench_end_to_end(store: Store, path: Path, rows: int, result: dict[str, Any]) -> None:
    """``run_import`` of the CSV, as ``mapservice import`` runs it, twice."""
    from importers import ImportOptions, pipeline, run_import
    from importers.pipeline import gazetteer_geocoder
    from mapservice.settings import load

    # From PARALLEL_MIN_BYTES on, a second process reads and validates while the store's
    # load phase writes: "read+validate" is then only what comes before the first record is
    # written, and "write" includes the reading it overlaps.
    streamed = path.stat().st_size >= pipeline.PARALLEL_MIN_BYTES
    if streamed:
        print("  (streamed: the file is read and validated in a second process while the write "
              "loads it; 'write' includes that reading)")

    region = tuple(float(v) for v in load()["REGION_BBOX"].split(","))
    for run in ("first import", "re-import (unchanged)"):
        timed = _TimedStore(store)
        options = ImportOptions(source=SOURCE, region_bbox=region)  # type: ignore[arg-type]
        started = time.perf_counter()
        report = run_import(timed, path, options, geocoder=gazetteer_geocoder)  # type: ignore
        total = time.perf_counter() - started
        write = timed.seconds.get("bulk_upsert", 0.0) + timed.seconds.get("upsert", 0.0)
        duplicates = timed.seconds.get("flag_duplicates", 0.0)
        commit = timed.seconds.get("commit", 0.0)
        phases = {"read+validate": total - write - duplicates - commit, "write": write,
                  "duplicates": duplicates, "commit": commit}
        print_phases(f"mapservice import, {run}", rows, phases, total)
        print(f"  {'':<34} read {report.read:,}: created {report.created:,}, updated "
              f"{report.updated:,}, unchanged {report.unchanged:,}, warnings "
              f"{len(report.warnings):,}; write phases "
              + ", ".join(f"{k} {v:.1f} s" for k, v in timed.timings.items()))
        result[run] = {"seconds": round(total, 2), "rows_per_s": round(rows / total),
                       "phases_s": {k: round(v, 2) for k, v in phases.items()},
                       "write_phases_s": {k: round(v, 2) for k, v in timed.timings.items()},
                       "created": report.created, "unchanged": report.unchanged,
                       "streamed": streamed}


def _pg_dsn(url: str) -> str:
    u = make_url(url)
    parts = {"dbname": u.database, "host": u.host, "port": u.port, "user": u.username,
             "password": u.password}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v)


def bench_ogr2ogr(backend: str, path: Path, rows: int, admin_url: str,
                  result: dict[str, Any]) -> float | None:
    """ogr2ogr loading the CSV into the same kind of database; its seconds."""
    if shutil.which("ogr2ogr") is None:
        print("  ogr2ogr: not installed (Debian: gdal-bin) - skipped")
        return None
    common = [str(path), "-oo", "X_POSSIBLE_NAMES=lon", "-oo", "Y_POSSIBLE_NAMES=lat",
              "-a_srs", "EPSG:4326", "-nln", "ogr_bench"]
    database = (postgis_database(admin_url) if backend == "postgis"
                else spatialite_database("ogr2ogr"))
    with database as url:
        if backend == "postgis":
            engine = make_engine(url)
            with engine.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            engine.dispose()
            command = ["ogr2ogr", "-f", "PostgreSQL", f"PG:{_pg_dsn(url)}", *common,
                       "-lco", "SPATIAL_INDEX=GIST", "--config", "PG_USE_COPY", "YES"]
        else:
            command = ["ogr2ogr", "-f", "SQLite", "-dsco", "SPATIALITE=YES",
                       make_url(url).database, *common]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
    print(f"  {'ogr2ogr':<34} {seconds:7.1f} s {_rate(rows, seconds)}", flush=True)
    result["ogr2ogr"] = {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
                         "command": " ".join(command[:2]) + " ... " + " ".join(command[3:])}
    return seconds


def versions(engine: Engine) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return conn.execute(text("SELECT split_part(version(), ' on ', 1) || ', PostGIS ' "
                                     "|| postgis_lib_version()")).scalar_one()
        return conn.execute(text("SELECT 'SQLite ' || sqlite_version() || ', SpatiaLite ' "
                                 "|| spatialite_version()")).scalar_one()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=("postgis", "spatialite", "both"), default="both")
    parser.add_argument("--skip", action="append", default=[],
                        choices=("bulk", "import", "ogr2ogr"), help="leave out a part")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--statements", type=int, default=0, metavar="N",
                        help="print the N slowest SQL statements of each bulk_upsert run")
    args = parser.parse_args(argv)
    admin_url = os.environ.get("MAPSERVICE_BENCH_POSTGIS_URL", DEFAULT_POSTGIS)
    backends = ["postgis", "spatialite"] if args.backend == "both" else [args.backend]

    print(f"import benchmark: {args.rows:,} rows, seed {args.seed}; {platform.node()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    path = csv_file(args.rows, args.seed)
    recs = list(records(args.rows, args.seed)) if "bulk" not in args.skip else []
    results: dict[str, Any] = {"rows": args.rows, "seed": args.seed, "csv": str(path)}
    for backend in backends:
        result: dict[str, Any] = results.setdefault(backend, {})
        print(f"\n{backend}:", flush=True)
        if "bulk" not in args.skip:
            with fresh_store(backend, admin_url, "bulk") as store:
                print(f"  ({versions(store.engine)}; load average "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
                bench_bulk(store, recs, result.setdefault("bulk_upsert", {}), args.statements)
        if "import" not in args.skip:
            with fresh_store(backend, admin_url, "import") as store:
                bench_end_to_end(store, path, args.rows, result.setdefault("import", {}))
        if "ogr2ogr" not in args.skip:
            seconds = bench_ogr2ogr(backend, path, args.rows, admin_url, result)
            if seconds:
                for part, run in (("bulk_upsert", "first load"), ("import", "first import")):
                    ours = result.get(part, {}).get(run)
                    if ours:
                        ratio = seconds / ours["seconds"]
                        ours["ratio_to_ogr2ogr"] = round(ratio, 2)
                        print(f"  ours/ogr2ogr ({part}, {run}): {ratio:.2f}")
        print(f"  (load average {os.getloadavg()[0]:.1f})", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
