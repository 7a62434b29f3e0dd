"""Search benchmark: the search API over HTTP on PostGIS and SpatiaLite, against the budgets of
DESIGN.md, and the same bbox queries served by pygeoapi from the same PostGIS table.

For each size (default 100k and 1M synthetic resources from :mod:`bench.generate`) and backend:

1. a fresh database (PostGIS: its own database on ``MAPSERVICE_BENCH_POSTGIS_URL``; SpatiaLite:
   a file under ``bench/out/``), ``migrate.upgrade``, ``Store.bulk_upsert``, ``ANALYZE``;
2. in-process (no HTTP): ``Store.search`` latency of every workload (the "DB p95" of the
   budget is nearest-10), and GeoJSON serialisation throughput of 1,000-feature pages
   (``geojson.feature_collection`` + orjson, as the API does), per CPU core;
3. ``mapservice serve --workers 2`` (granian) on a free loopback port, and a load client
   (http.client, one connection per client, ``time.perf_counter_ns`` per request) that runs,
   after a warm-up, N requests of each workload:

   - ``nearest-10``: ``near=`` random points inside Hamburg (uniform over the Stadtteile's
     area), ``limit=10``;
   - ``nearest-10-cat``: the same with a random ``category``;
   - ``bbox-1000``: boxes around random resources (where the map is looked at), each grown
     until it holds >= 1,000 resources, ``limit=1000``; also via our OGC API items;
   - ``text``: ``q=`` a common word of the generated names/descriptions, ``limit=10``;

4. PostGIS only: pygeoapi (its own venv under ``bench/out/pygeoapi-venv``, config from
   ``bench/pygeoapi/config.template.yml``) served by gunicorn with the same worker count, and
   the same bbox queries on ``/collections/resources/items``. Our bbox runs and pygeoapi's are
   interleaved in blocks, so a change in the machine's background load hits both alike.

Every measurement records the load average (the machine is shared). Results: a table on
stdout and JSON in ``bench/out/search-bench-<time>.json`` (and ``search-bench-latest.json``).

    python -m bench.search_bench --sizes 100000,1000000 --backends postgis,spatialite
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYGEOAPI_DIR = ROOT / "bench" / "pygeoapi"
PYGEOAPI_VENV = OUT / "pygeoapi-venv"
# The statement of Store.search that reads the Last-Modified validator on its own, not the
# results (where the page's statement carries it as a column, it stays in the SQL figure).
LAST_MODIFIED_SQL = "SELECT (SELECT max(resource.updated_at)"
DEFAULT_POSTGIS_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
HOST = "127.0.0.1"
SEED = 1
SOURCE = "bench"
# Common words of the generated names and descriptions (bench.generate): prefixes of name
# stems ("sprach" -> Sprachcafé, Sprachtreff, Sprachkurse), whole stems, topics, and one with
# an umlaut to exercise folding.
TEXT_WORDS = ("sprach", "jugend", "beratung", "familien", "selbsthilfe", "bücherhalle", "kochen",
              "stadtteilzentrum")
BBOX_MIN_FEATURES = 1000
# The budgets of DESIGN.md this benchmark checks (ms; features/s; ratio).
BUDGETS = {
    ("postgis", "db", "nearest-10"): 1.0,
    ("spatialite", "db", "nearest-10"): 2.0,
    ("postgis", "http", "nearest-10"): 3.0,
    ("spatialite", "http", "nearest-10"): 3.0,  # DESIGN gives SpatiaLite 2 ms "via an R*Tree"
    ("postgis", "http", "bbox-1000"): 20.0,
    ("spatialite", "http", "bbox-1000"): 20.0,
    ("postgis", "http", "ogc-bbox-1000"): 20.0,
    ("spatialite", "http", "ogc-bbox-1000"): 20.0,
}
SERIALISATION_BUDGET = 300_000
PYGEOAPI_RATIO_BUDGET = 5.0


# ---- workloads -------------------------------------------------------------------------------
class Workload:
    """One kind of request: URL paths for HTTP and the same queries for in-process calls."""

    def __init__(self, name: str, params: list[dict[str, str]], expect: int, requests: int,
                 prefix: str = "/api/v1/resources") -> None:
        self.name, self.params, self.expect, self.requests = name, params, expect, requests
        self.paths = [f"{prefix}?{urlencode(p)}" for p in params]


def hamburg_points(count: int, rng: random.Random) -> list[tuple[float, float]]:
    """``count`` (lat, lon) uniform over the union of the Stadtteile's boxes (by area)."""
    from bench.generate import places

    boxes = [p["bbox"] for p in places()]
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    out = []
    for box in rng.choices(boxes, weights=areas, k=count):
        out.append((round(rng.uniform(box[1], box[3]), 6), round(rng.uniform(box[0], box[2]), 6)))
    return out


def dense_boxes(points: Any, count: int, rng: random.Random, minimum: int
                ) -> list[tuple[tuple[float, float, float, float], int]]:
    """``count`` square boxes, each centred on a random resource and grown (x1.15) from 100 m
    half-side until it holds >= ``minimum`` of ``points`` (an array of lon, lat); returns
    (box, points inside)."""
    import numpy as np

    lon, lat = points[:, 0], points[:, 1]
    out = []
    for _ in range(count):
        clon, clat = points[rng.randrange(len(points))]
        coslat = math.cos(math.radians(clat))
        half = 100.0
        while True:
            dlat = half / 111_320.0
            dlon = dlat / coslat
            box = (round(clon - dlon, 6), round(clat - dlat, 6), round(clon + dlon, 6),
                   round(clat + dlat, 6))
            inside = int(np.count_nonzero((lon >= box[0]) & (lon <= box[2])
                                          & (lat >= box[1]) & (lat <= box[3])))
            if inside >= minimum:
                out.append((box, inside))
                break
            half *= 1.15
    return out


def workloads(points: Any, categories: list[str], requests: int, bbox_requests: int,
              seed: int) -> tuple[list[Workload], dict[str, Any]]:
    """The workloads for one size (the same for both backends) and facts about them."""
    rng = random.Random(seed)
    near = hamburg_points(1000, rng)
    near_params = [{"near": f"{lat},{lon}", "limit": "10"} for lat, lon in near]
    cat_params = [{"near": f"{lat},{lon}", "category": rng.choice(categories), "limit": "10"}
                  for lat, lon in near]
    boxes = dense_boxes(points, 100, rng, BBOX_MIN_FEATURES)
    bbox_params = [{"bbox": ",".join(map(str, box)), "limit": "1000"} for box, _ in boxes]
    text_params = [{"q": TEXT_WORDS[i % len(TEXT_WORDS)], "limit": "10"}
                   for i in range(len(TEXT_WORDS))]
    inside = sorted(n for _, n in boxes)
    facts = {"near_points": len(near), "bboxes": len(boxes),
             "bbox_points_inside": {"min": inside[0], "median": inside[len(inside) // 2],
                                    "max": inside[-1]},
             "text_words": list(TEXT_WORDS)}
    return [
        Workload("nearest-10", near_params, 10, requests),
        Workload("nearest-10-cat", cat_params, 10, requests),
        Workload("bbox-1000", bbox_params, 1000, bbox_requests),
        Workload("ogc-bbox-1000", bbox_params, 1000, bbox_requests,
                 prefix="/ogc/collections/resources/items"),
        Workload("text", text_params, 10, requests),
    ], facts


def to_query(params: dict[str, str]) -> Any:
    """The SearchQuery the API builds from ``params``."""
    from werkzeug.datastructures import MultiDict

    from mapservice.search import parse_search
    from mapservice.taxonomy import default as default_taxonomy

    return parse_search(MultiDict(params), taxonomy=default_taxonomy())


# ---- statistics ------------------------------------------------------------------------------
def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def summarise(latencies_ns: list[int], wall_ns: int, errors: int = 0) -> dict[str, Any]:
    ms = sorted(v / 1e6 for v in latencies_ns)
    return {"n": len(ms), "errors": errors,
            "p50_ms": round(percentile(ms, 50), 3), "p95_ms": round(percentile(ms, 95), 3),
            "p99_ms": round(percentile(ms, 99), 3), "max_ms": round(ms[-1], 3) if ms else None,
            "rps": round(len(ms) / (wall_ns / 1e9), 1) if wall_ns else None}


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# The machine is shared: before each measurement, wait (up to QUIET["wait"] s) until the CPUs
# are less busy than QUIET["threshold"], and record how busy they were before and during it.
QUIET = {"threshold": 0.25, "wait": 120.0}


def _cpu_ticks() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def cpu_busy(interval: float = 1.0) -> float:
    """Share of all CPUs busy over the next ``interval`` seconds (every process)."""
    busy0, total0 = _cpu_ticks()
    time.sleep(interval)
    busy1, total1 = _cpu_ticks()
    return round((busy1 - busy0) / max(total1 - total0, 1), 2)


def machine_before() -> dict[str, Any]:
    """Wait for a quiet machine (bounded); the state to pass to :func:`machine_after`."""
    deadline = time.monotonic() + QUIET["wait"]
    busy = cpu_busy()
    while busy > QUIET["threshold"] and time.monotonic() < deadline:
        time.sleep(3)
        busy = cpu_busy()
    return {"load": loadavg(), "busy_before": busy, "ticks": _cpu_ticks()}


def machine_after(mark: dict[str, Any]) -> dict[str, Any]:
    busy0, total0 = mark["ticks"]
    busy1, total1 = _cpu_ticks()
    return {"load": [mark["load"], loadavg()], "busy_before": mark["busy_before"],
            "busy_during": round((busy1 - busy0) / max(total1 - total0, 1), 2)}


# ---- databases -------------------------------------------------------------------------------
def postgis_database(admin_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``admin_url``; returns its URL."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgis_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def spatialite_database(path: Path) -> str:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def load(url: str, size: int, seed: int) -> dict[str, Any]:
    """Schema, ``Store.bulk_upsert`` of ``size`` generated records, ANALYZE; returns timings.
    The generator runs inside the timed load (it is a stream), so ``rows_per_s`` is a lower
    bound of the import speed; bench/import_bench.py is the import benchmark."""
    from bench.generate import records
    from mapservice import migrate
    from mapservice.db import make_engine
    from mapservice.store import make_store

    engine = make_engine(url, statement_timeout_ms=0)
    try:
        migrate.upgrade(engine)
        store = make_store(engine)
        started = time.perf_counter()
        report = store.bulk_upsert(records(size, seed), source=SOURCE, changed_by="bench")
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        analyse(engine)
        analysed = time.perf_counter() - started
        count = store.count()
    finally:
        engine.dispose()
    if count < size * 0.99:
        raise SystemExit(f"loaded {count} published resources, expected {size}")
    return {"rows": count, "created": report.created, "load_s": round(loaded, 1),
            "rows_per_s": round(size / loaded), "analyze_s": round(analysed, 1)}


def analyse(engine: Any) -> None:
    """Statistics, then the load's dirty pages written out (CHECKPOINT; SQLite: the WAL into
    the database file), so the write-back of a 1 GB load does not run under the
    measurements and the figures are those of a database at rest."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            conn.exec_driver_sql("CHECKPOINT")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def reusable(url: str, size: int) -> bool:
    """The database exists, is at the migrations' head and holds ``size`` resources."""
    from sqlalchemy.exc import SQLAlchemyError

    from mapservice import migrate
    from mapservice.db import make_engine
    from mapservice.store import make_store

    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return False
    engine = make_engine(url)
    try:
        return migrate.current(engine) == migrate.head() and make_store(engine).count() == size
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def stored_points(url: str) -> Any:
    """(lon, lat) of every published resource, as stored (confidential ones approximate)."""
    import numpy as np
    from sqlalchemy import func, select

    from mapservice.db import make_engine
    from mapservice.models import Resource

    engine = make_engine(url, statement_timeout_ms=0)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(func.ST_X(Resource.geom), func.ST_Y(Resource.geom))
                                .where(Resource.status == "published")
                                .order_by(Resource.id)).all()
    finally:
        engine.dispose()
    return np.asarray(rows, dtype=float)


# ---- in-process measurements -------------------------------------------------------------------
def measure_in_process(url: str, loads: list[Workload], requests: dict[str, int],
                       warmup: int) -> dict[str, dict[str, Any]]:
    """Per workload, without HTTP or serialisation: ``store``, the latency of
    ``Store.search``; ``sql``, the latency of the very SQL statements it sends (captured, then
    replayed on a raw DBAPI connection): the database's own time plus the driver."""
    from sqlalchemy import event

    from mapservice.db import make_engine
    from mapservice.store import make_store

    # No statement timeout: on SQLite it is a deadline that SQLAlchemy's events renew, and the
    # raw connection of the replay would run into a stale one.
    engine = make_engine(url, statement_timeout_ms=0)
    store = make_store(engine)
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                _many: bool) -> None:
        captured.append((statement, parameters))

    results: dict[str, dict[str, Any]] = {"store": {}, "sql": {}}
    try:
        for wl in loads:
            if wl.name.startswith("ogc-"):
                continue  # the same store call as bbox-1000
            queries = [to_query(p) for p in wl.params]
            for i in range(warmup):
                store.search(queries[i % len(queries)])
            n = requests[wl.name]
            lat: list[int] = []
            mark = machine_before()
            t0 = time.perf_counter_ns()
            for i in range(n):
                query = queries[(warmup + i) % len(queries)]
                s = time.perf_counter_ns()
                result = store.search(query)
                lat.append(time.perf_counter_ns() - s)
                if len(result.hits) != wl.expect:
                    raise SystemExit(f"{wl.name}: {len(result.hits)} hits, expected {wl.expect} "
                                     f"for {wl.params[(warmup + i) % len(queries)]}")
            stats = summarise(lat, time.perf_counter_ns() - t0)
            stats.update(machine_after(mark))
            results["store"][wl.name] = stats

            statements: list[list[tuple[str, Any]]] = []
            event.listen(engine, "before_cursor_execute", capture)
            try:
                for query in queries:
                    captured.clear()
                    store.search(query)
                    # Not the search: the response's Last-Modified (one indexed max(), part
                    # of the `store` and `http` figures), and SQLite's BEGIN (mapservice.db
                    # begins each transaction itself; the replay runs outside one).
                    statements.append([s for s in captured if not s[0].lstrip().startswith(
                        (LAST_MODIFIED_SQL, "BEGIN"))])
            finally:
                event.remove(engine, "before_cursor_execute", capture)
            results["sql"][wl.name] = replay(engine, statements, n, warmup)
            results["sql"][wl.name]["statements_per_search"] = len(statements[0])
    finally:
        engine.dispose()
    return results


def replay(engine: Any, searches: list[list[tuple[str, Any]]], n: int, warmup: int
           ) -> dict[str, Any]:
    """Latency of sending each search's statements on one raw DBAPI connection."""
    raw = engine.raw_connection()
    try:
        # As the app reads them (store.base._execute): PostgreSQL results in binary format,
        # so the stored Features arrive as bytes.
        cursor = raw.cursor(binary=True) if engine.dialect.name == "postgresql" else raw.cursor()

        def one(statements: list[tuple[str, Any]]) -> None:
            for statement, parameters in statements:
                cursor.execute(statement, parameters)
                cursor.fetchall()

        for i in range(warmup):
            one(searches[i % len(searches)])
        lat: list[int] = []
        mark = machine_before()
        t0 = time.perf_counter_ns()
        for i in range(n):
            statements = searches[(warmup + i) % len(searches)]
            s = time.perf_counter_ns()
            one(statements)
            lat.append(time.perf_counter_ns() - s)
        stats = summarise(lat, time.perf_counter_ns() - t0)
        stats.update(machine_after(mark))
        cursor.close()
        raw.rollback()
    finally:
        raw.close()
    return stats


def measure_serialisation(url: str, bbox: Workload, pages: int = 10, rounds: int = 10
                          ) -> dict[str, Any]:
    """Features/s of serialising 1,000-feature pages one at a time, as the API does: the
    stored Features of the page joined into a FeatureCollection (``geojson.feature_collection``)
    and wrapped in a response; per CPU second of this one thread (= per core) and per wall
    second. Python's cyclic GC runs as in a worker; the same is measured once more after
    ``gc.freeze()``. Also: what each stored Feature cost when it was written
    (``geojson.stored_feature``: dict building + orjson, once per write, not per request),
    and the old way of building a Feature dict per hit and orjson-encoding the page, for
    comparison."""
    import gc

    import orjson
    from flask import Response

    from mapservice.db import make_engine
    from mapservice.geojson import public_properties, feature_collection, stored_feature
    from mapservice.store import make_store

    engine = make_engine(url)
    try:
        store = make_store(engine)
        hit_pages = [store.search(to_query(p)).hits for p in bbox.params[:pages]]
    finally:
        engine.dispose()
    stored = sum(h.fragment is not None for p in hit_pages for h in p)
    features = sum(len(p) for p in hit_pages) * rounds
    columns = [[(h.properties, h.lon, h.lat) for h in p] for p in hit_pages]

    def timed(fn: Callable[[Any], Any], pages_: list[Any]) -> tuple[float, float]:
        for page in pages_:  # warm
            fn(page)
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            for page in pages_:
                fn(page)
        return time.process_time() - c0, time.perf_counter() - w0

    def serve(hits: list[Any]) -> bytes:
        return Response(feature_collection(hits, numberReturned=len(hits), links=[]),
                        mimetype="application/geo+json").get_data()

    def write_time(rows: list[Any]) -> list[str]:
        return [stored_feature(props, lon, lat) for props, lon, lat in rows]

    def per_request_dicts(rows: list[Any]) -> bytes:
        return orjson.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": props["uid"],
             "geometry": {"type": "Point", "coordinates": [lon, lat]},
             "properties": public_properties(props)} for props, lon, lat in rows],
            "numberReturned": len(rows), "links": []})

    mark = machine_before()
    serve_cpu, serve_wall = timed(serve, hit_pages)
    gc.freeze()
    try:
        frozen_cpu, _ = timed(serve, hit_pages)
    finally:
        gc.unfreeze()
    write_cpu, _ = timed(write_time, columns)
    dicts_cpu, _ = timed(per_request_dicts, columns)
    size = sum(len(serve(p)) for p in hit_pages) / len(hit_pages)
    return {"features": features, "page_bytes": round(size),
            "stored_share": round(stored / max(1, features // rounds), 3),
            "features_per_cpu_s": round(features / serve_cpu),
            "features_per_wall_s": round(features / serve_wall),
            "gc_frozen_per_cpu_s": round(features / frozen_cpu),
            "stored_feature_build_per_cpu_s": round(features / write_cpu),
            "per_request_dicts_per_cpu_s": round(features / dicts_cpu),
            **machine_after(mark)}


# ---- servers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """A server master we started (own process group: ours granian, pygeoapi gunicorn), stopped
    by its pid."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int,
                 ready_path: str, log: Path) -> None:
        self.name, self.port = name, port
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited with {self.proc.returncode}; see {log}")
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
                conn.request("GET", ready_path)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{name} not ready after 120 s; see {log}")
            time.sleep(0.3)

    def pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [self.proc.pid, *map(int, children.read_text().split())]
        except OSError:
            return [self.proc.pid]

    def cpu_s(self) -> float:
        """CPU seconds used so far by the master and its workers."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def start_mapservice(url: str, workers: int, tag: str) -> Server:
    port = free_port()
    env = dict(os.environ, MAPSERVICE_DATABASE_URL=url, MAPSERVICE_WORKERS=str(workers),
               MAPSERVICE_SECRET_KEY="bench-only", MAPSERVICE_INSTANCE_DIR=str(OUT / "instance"))
    cmd = [sys.executable, "-m", "mapservice", "serve", "--host", HOST, "--port", str(port),
           "--workers", str(workers)]
    return Server(f"mapservice ({tag})", cmd, env, port, "/api/v1/resources?limit=1",
                  OUT / "logs" / f"serve-{tag}.log")


def ensure_pygeoapi_venv() -> Path:
    python = PYGEOAPI_VENV / "bin" / "python"
    if not (PYGEOAPI_VENV / "bin" / "pygeoapi").exists():
        print(f"creating {PYGEOAPI_VENV} (pygeoapi's own venv) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PYGEOAPI_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--prefer-binary", "-r",
                        str(PYGEOAPI_DIR / "requirements.txt")], check=True)
    return PYGEOAPI_VENV / "bin"


def start_pygeoapi(url: str, workers: int, tag: str) -> tuple[Server, str]:
    from sqlalchemy.engine import make_url

    bin_dir = ensure_pygeoapi_venv()
    parsed = make_url(url)
    port = free_port()
    conf_dir = OUT / "pygeoapi"
    conf_dir.mkdir(parents=True, exist_ok=True)
    config, openapi = conf_dir / f"config-{tag}.yml", conf_dir / f"openapi-{tag}.yml"
    template = string.Template((PYGEOAPI_DIR / "config.template.yml").read_text())
    config.write_text(template.substitute(
        port=port, host=parsed.host or HOST, dbport=parsed.port or 5432,
        dbname=parsed.database, user=parsed.username or "postgres",
        password=parsed.password or ""))
    env = dict(os.environ, PYGEOAPI_CONFIG=str(config), PYGEOAPI_OPENAPI=str(openapi))
    log = OUT / "logs" / f"pygeoapi-openapi-{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:  # it warns about every column type it cannot describe
        subprocess.run([str(bin_dir / "pygeoapi"), "openapi", "generate", str(config),
                        "--output-file", str(openapi)], env=env, check=True, stdout=out,
                       stderr=subprocess.STDOUT)
    version = subprocess.run([str(bin_dir / "python"), "-c",
                              "import pygeoapi; print(pygeoapi.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    cmd = [str(bin_dir / "gunicorn"), "--workers", str(workers), "--bind", f"{HOST}:{port}",
           "pygeoapi.flask_app:APP"]
    server = Server(f"pygeoapi ({tag})", cmd, env, port,
                    "/collections/resources/items?limit=1&f=json",
                    OUT / "logs" / f"pygeoapi-{tag}.log")
    return server, version


# ---- the load client -------------------------------------------------------------------------
def _features(body: bytes) -> int:
    import orjson

    return len(orjson.loads(body)["features"])


def run_client(port: int, paths: list[str], n: int, warmup: int, expect: int | None,
               offset: int = 0) -> dict[str, Any]:
    """One client: ``warmup`` requests (checked: status 200 and ``expect`` features), then
    ``n`` timed ones; one connection, re-opened only when the server closes it."""
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    headers = {"Accept": "application/geo+json"}
    for i in range(warmup):
        path = paths[(offset + i) % len(paths)]
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:300]!r}")
        if expect is not None and _features(body) != expect:
            raise SystemExit(f"GET {path}: {_features(body)} features, expected {expect}")
    latencies: list[int] = []
    errors = connects = 0
    received = 0
    start = offset + warmup
    t0 = time.perf_counter_ns()
    for i in range(n):
        path = paths[(start + i) % len(paths)]
        if conn.sock is None:
            connects += 1
        s = time.perf_counter_ns()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        latencies.append(time.perf_counter_ns() - s)
        received += len(body)
        if response.status != 200:
            errors += 1
    wall = time.perf_counter_ns() - t0
    conn.close()
    return {"latencies": latencies, "wall_ns": wall, "errors": errors, "connects": connects,
            "bytes": received}


def _client_process(port: int, paths: list[str], n: int, warmup: int, expect: int | None,
                    offset: int, barrier: Any, queue: Any) -> None:
    run_client(port, paths, warmup, 0, expect, offset)  # warm-up, untimed
    barrier.wait()
    queue.put(run_client(port, paths, n, 0, None, offset + warmup))


def measure_http(server: Server, paths: list[str], n: int, warmup: int, expect: int | None,
                 clients: int = 1, offset: int = 0) -> dict[str, Any]:
    mark = machine_before()
    cpu0 = server.cpu_s()
    if clients == 1:
        run = run_client(server.port, paths, n, warmup, expect, offset)
        stats = summarise(run["latencies"], run["wall_ns"], run["errors"])
        runs = [run]
    else:
        ctx = mp.get_context("spawn")
        barrier, queue = ctx.Barrier(clients), ctx.Queue()
        per = max(n // clients, 1)
        procs = [ctx.Process(target=_client_process,
                             args=(server.port, paths, per, max(warmup // clients, 1), expect,
                                   offset + k * 7919, barrier, queue))
                 for k in range(clients)]
        for proc in procs:
            proc.start()
        runs = [queue.get() for _ in procs]
        for proc in procs:
            proc.join()
        latencies = [v for run in runs for v in run["latencies"]]
        stats = summarise(latencies, max(run["wall_ns"] for run in runs),
                          sum(run["errors"] for run in runs))
    stats["clients"] = clients
    stats["connects"] = sum(run["connects"] for run in runs)
    stats["bytes_per_response"] = round(sum(run["bytes"] for run in runs) / max(stats["n"], 1))
    stats["server_cpu_ms_per_request"] = round((server.cpu_s() - cpu0) * 1000 / stats["n"], 2)
    stats.update(machine_after(mark))
    return stats


def measure_interleaved(targets: dict[str, tuple[Server, list[str], int]], n: int, warmup: int,
                        blocks: int = 5) -> dict[str, Any]:
    """The same requests against several servers, in alternating blocks (one client). The
    order rotates from block to block, so each server follows each other one as often (the
    one after pygeoapi met the database's caches as pygeoapi had left them)."""
    for name, (server, paths, expect) in targets.items():
        run_client(server.port, paths, 0, warmup, expect)
    parts: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    cpu = {name: 0.0 for name in targets}
    machine = []
    per_block = max(n // blocks, 1)
    for block in range(blocks):
        mark = machine_before()
        names = list(targets)
        for name in names[block % len(names):] + names[:block % len(names)]:
            server, paths, _expect = targets[name]
            c0 = server.cpu_s()
            parts[name].append(run_client(server.port, paths, per_block, 0, None,
                                          offset=warmup + block * per_block))
            cpu[name] += server.cpu_s() - c0
        machine.append(machine_after(mark))
    out = {}
    for name, runs in parts.items():
        stats = summarise([v for r in runs for v in r["latencies"]],
                          sum(r["wall_ns"] for r in runs), sum(r["errors"] for r in runs))
        stats["clients"] = 1
        stats["blocks"] = blocks
        stats["bytes_per_response"] = round(sum(r["bytes"] for r in runs) / max(stats["n"], 1))
        stats["server_cpu_ms_per_request"] = round(cpu[name] * 1000 / stats["n"], 2)
        stats["load"] = [machine[0]["load"][0], machine[-1]["load"][1]]
        stats["busy_before"] = max(m["busy_before"] for m in machine)
        stats["busy_during"] = round(sum(m["busy_during"] for m in machine) / len(machine), 2)
        out[name] = stats
    return out


# ---- one size x backend ------------------------------------------------------------------------
def bench_backend(backend: str, size: int, args: argparse.Namespace,
                  state: dict[str, Any]) -> dict[str, Any]:
    tag = f"{backend}-{size}"
    run: dict[str, Any] = {"size": size, "backend": backend, "load_start": loadavg(),
                           "code": code_fingerprint()}
    db_name = f"mapservice_bench_search_{size}"
    if backend == "postgis":
        from sqlalchemy.engine import make_url

        url = make_url(args.postgis_url).set(database=db_name).render_as_string(False)
    else:
        url = f"sqlite:///{OUT / f'search-{size}.sqlite'}"
    if args.reuse and reusable(url, size):
        print(f"[{tag}] reusing {size} resources ...", file=sys.stderr, flush=True)
        run["import"] = {"reused": True}
    else:
        if backend == "postgis":
            url = postgis_database(args.postgis_url, db_name)
        else:
            url = spatialite_database(OUT / f"search-{size}.sqlite")
        print(f"[{tag}] loading {size} resources ...", file=sys.stderr, flush=True)
        run["import"] = load(url, size, args.seed)
        print(f"[{tag}] loaded: {run['import']}", file=sys.stderr, flush=True)
    if "loads" not in state:  # the same workloads for every backend of this size
        from mapservice.taxonomy import default as default_taxonomy

        state["loads"], state["facts"] = workloads(
            stored_points(url), sorted(default_taxonomy().categories), args.requests,
            args.bbox_requests, args.seed + size)
    loads: list[Workload] = state["loads"]
    run["workload"] = state["facts"]
    by_name = {wl.name: wl for wl in loads}
    n_of = {wl.name: wl.requests for wl in loads}

    print(f"[{tag}] in-process Store.search ...", file=sys.stderr, flush=True)
    run["db"] = measure_in_process(url, loads, n_of, args.warmup)
    run["serialisation"] = measure_serialisation(url, by_name["bbox-1000"])

    print(f"[{tag}] HTTP ...", file=sys.stderr, flush=True)
    server = start_mapservice(url, args.workers, tag)
    pyg = None
    try:
        run["http"] = {}
        for wl in loads:
            if wl.name.endswith("bbox-1000"):
                continue  # below, interleaved with pygeoapi
            run["http"][wl.name] = {str(c): measure_http(server, wl.paths, wl.requests,
                                                         args.warmup, wl.expect, c)
                                    for c in args.clients}
        bbox, ogc = by_name["bbox-1000"], by_name["ogc-bbox-1000"]
        targets = {"bbox-1000": (server, bbox.paths, bbox.expect),
                   "ogc-bbox-1000": (server, ogc.paths, ogc.expect)}
        if backend == "postgis" and not args.skip_pygeoapi:
            pyg, version = start_pygeoapi(url, args.workers, tag)
            run["pygeoapi_version"] = version
            pyg_paths = [f"/collections/resources/items?{urlencode({**p, 'f': 'json'})}"
                         for p in bbox.params]
            targets["pygeoapi-bbox-1000"] = (pyg, pyg_paths, bbox.expect)
        print(f"[{tag}] bbox-1000 ({', '.join(targets)}) ...", file=sys.stderr, flush=True)
        interleaved = measure_interleaved(targets, bbox.requests, args.warmup // 10 or 1)
        for name, stats in interleaved.items():
            run["http"][name] = {"1": stats}
        for c in args.clients:
            if c != 1:
                for name in ("bbox-1000", "ogc-bbox-1000"):
                    wl = by_name[name]
                    run["http"][name][str(c)] = measure_http(server, wl.paths, wl.requests,
                                                             args.warmup // 10 or 1, wl.expect, c)
        if pyg is not None:
            theirs = run["http"]["pygeoapi-bbox-1000"]["1"]["rps"]
            run["pygeoapi_ratio"] = {name: round(run["http"][name]["1"]["rps"] / theirs, 1)
                                     for name in ("bbox-1000", "ogc-bbox-1000")}
    finally:
        server.stop()
        if pyg is not None:
            pyg.stop()
    run["load_end"] = loadavg()
    run["code_end"] = code_fingerprint()
    run["url"] = url.split("@")[-1] if backend == "postgis" else url
    if not args.keep:
        if backend == "postgis":
            drop_postgis_database(args.postgis_url, db_name)
        else:
            spatialite_database(OUT / f"search-{size}.sqlite")
    return run


# ---- report ----------------------------------------------------------------------------------
def _verdict(value: float | None, budget: float | None, lower_is_better: bool = True) -> str:
    if value is None or budget is None:
        return ""
    ok = value <= budget if lower_is_better else value >= budget
    return "ok" if ok else "MISS"


def _machine(stats: dict[str, Any]) -> str:
    return (f"{stats['busy_before']:.0%}/{stats['busy_during']:.0%}, "
            f"{stats['load'][0][0]:.1f}")


def table(results: dict[str, Any]) -> str:
    lines = []
    head = (f"{'size':>9} {'backend':<10} {'where':<5} {'workload':<19} {'cl':>2} {'p50':>8} "
            f"{'p95':>8} {'p99':>8} {'req/s':>8} {'cpu/req':>8} {'budget p95':>10} {'':<4} "
            f"busy before/during, load1")
    lines.append(head)
    lines.append("-" * len(head))
    for run in results["runs"]:
        size, backend = run["size"], run["backend"]
        for where in ("sql", "store"):
            for name, stats in run["db"][where].items():
                budget = BUDGETS.get((backend, "db", name))
                lines.append(f"{size:>9} {backend:<10} {where:<5} {name:<19} {1:>2} "
                             f"{stats['p50_ms']:>8.2f} {stats['p95_ms']:>8.2f} "
                             f"{stats['p99_ms']:>8.2f} {stats['rps']:>8.0f} {'':>8} "
                             f"{budget or '':>10} {_verdict(stats['p95_ms'], budget):<4} "
                             f"{_machine(stats)}")
        for name, per_clients in run["http"].items():
            for clients, stats in per_clients.items():
                budget = BUDGETS.get((backend, "http", name)) if clients == "1" else None
                lines.append(f"{size:>9} {backend:<10} {'http':<5} {name:<19} {clients:>2} "
                             f"{stats['p50_ms']:>8.2f} {stats['p95_ms']:>8.2f} "
                             f"{stats['p99_ms']:>8.2f} {stats['rps']:>8.1f} "
                             f"{stats['server_cpu_ms_per_request']:>8.2f} {budget or '':>10} "
                             f"{_verdict(stats['p95_ms'], budget):<4} {_machine(stats)}")
    lines.append("")
    lines.append("GeoJSON serialisation of 1,000-feature pages from the stored Features "
                 f"(budget >= {SERIALISATION_BUDGET:,} features/s per core)")
    for run in results["runs"]:
        s = run["serialisation"]
        lines.append(f"  {run['size']:>9} {run['backend']:<10} {s['features_per_cpu_s']:>10,}/CPU-s "
                     f"({s['features_per_wall_s']:,}/wall-s; after gc.freeze() "
                     f"{s['gc_frozen_per_cpu_s']:,}; {s['stored_share']:.0%} stored; "
                     f"{s['page_bytes']:,} B/page) "
                     f"{_verdict(s['features_per_cpu_s'], SERIALISATION_BUDGET, False)}")
        lines.append(f"  {'':>9} {'':<10} at write time, dicts + orjson per Feature: "
                     f"{s['stored_feature_build_per_cpu_s']:,}/CPU-s; per-request dicts + "
                     f"orjson (before 0005): {s['per_request_dicts_per_cpu_s']:,}/CPU-s")
    ratios = [r for r in results["runs"] if "pygeoapi_ratio" in r]
    if ratios:
        lines.append("")
        lines.append(f"ours / pygeoapi requests/s, bbox-1000, one client (budget >= "
                     f"{PYGEOAPI_RATIO_BUDGET:g}x)")
        for run in ratios:
            theirs = run["http"]["pygeoapi-bbox-1000"]["1"]
            for name, ratio in run["pygeoapi_ratio"].items():
                lines.append(f"  {run['size']:>9} {name:<14} {run['http'][name]['1']['rps']:>7.1f}"
                             f" / {theirs['rps']:.1f} = {ratio:>5.1f}x "
                             f"{_verdict(ratio, PYGEOAPI_RATIO_BUDGET, False)}")
    return "\n".join(lines)


def code_fingerprint() -> str:
    """A hash of the application's code: the tree is edited while benchmarks run, and a
    result is only meaningful for the code it measured."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted((ROOT / "mapservice").rglob("*.py")):
        digest.update(path.read_bytes())
    for path in sorted((ROOT / "migrations").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated numbers of resources (default: %(default)s)")
    parser.add_argument("--backends", default="postgis,spatialite",
                        help="comma-separated: postgis, spatialite (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=2000,
                        help="timed requests per small workload (default: %(default)s)")
    parser.add_argument("--bbox-requests", type=int, default=300,
                        help="timed requests per bbox-1000 workload (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="untimed requests before each small workload; bbox: a tenth")
    parser.add_argument("--clients", default="1",
                        help="comma-separated client counts, e.g. 1,4 (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, both servers")
    parser.add_argument("--skip-pygeoapi", action="store_true")
    parser.add_argument("--keep", action="store_true",
                        help="keep the benchmark databases (PostGIS database, SQLite file)")
    parser.add_argument("--quiet-threshold", type=float, default=QUIET["threshold"],
                        help="before each measurement wait until the CPUs are busy less than "
                             "this share (default: %(default)s) ...")
    parser.add_argument("--quiet-wait", type=float, default=QUIET["wait"],
                        help="... but no longer than this many seconds (default: %(default)s)")
    parser.add_argument("--reuse", action="store_true",
                        help="development: reuse a kept database of the right size instead of "
                             "loading a fresh one (implies --keep)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--postgis-url", default=os.environ.get("MAPSERVICE_BENCH_POSTGIS_URL",
                                                                DEFAULT_POSTGIS_URL),
                        help="server for the benchmark database (MAPSERVICE_BENCH_POSTGIS_URL)")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.keep = args.keep or args.reuse
    QUIET.update(threshold=args.quiet_threshold, wait=args.quiet_wait)
    args.clients = sorted({int(c) for c in args.clients.split(",") if c})
    backends = [b for b in args.backends.split(",") if b]
    for backend in backends:
        if backend not in ("postgis", "spatialite"):
            parser.error(f"unknown backend {backend!r}")
    if "postgis" in backends and not args.skip_pygeoapi:
        ensure_pygeoapi_venv()

    started = dt.datetime.now(dt.timezone.utc)
    results: dict[str, Any] = {
        "command": "python -m bench.search_bench " + " ".join(sys.argv[1:] if argv is None
                                                              else argv),
        "started": started.isoformat(timespec="seconds"), "git": git_revision(),
        "code": code_fingerprint(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"requests": args.requests, "bbox_requests": args.bbox_requests,
                     "warmup": args.warmup, "clients": args.clients, "workers": args.workers,
                     "seed": args.seed, "quiet": dict(QUIET)},
        "budgets": {"|".join(k): v for k, v in BUDGETS.items()}
                   | {"serialisation_features_per_s": SERIALISATION_BUDGET,
                      "pygeoapi_ratio": PYGEOAPI_RATIO_BUDGET},
        "runs": [],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    path = OUT / f"search-bench-{stamp}.json"
    for size in args.sizes:
        state: dict[str, Any] = {}
        for backend in backends:
            results["runs"].append(bench_backend(backend, size, args, state))
            path.write_text(json.dumps(results, indent=2))  # partial results survive a crash
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results["code_at_end"] = code_fingerprint()
    path.write_text(json.dumps(results, indent=2))
    shutil.copyfile(path, OUT / "search-bench-latest.json")
    print(table(results))
    if results["code_at_end"] != results["code"]:
        print("\nWARNING: mapservice/ or migrations/ changed during the run: the figures mix "
              "code versions", file=sys.stderr)
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
