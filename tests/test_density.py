"""The density map that sizes the first window of SpatiaLite's nearest-k (store/density.py):
its counts against exact ones, its radius, its resistance to outliers, and the map read from a
real R*Tree."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mapservice.store.density import GRID_CELLS, DensityMap
from mapservice.store.spatialite import _metres_per_degree

from .conftest import osm_poi_records

POI_FILES = ("childcare", "clinics", "community-centers", "doctors", "kindergartens", "libraries",
             "places-of-worship", "schools")


def _city(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Points clustered like a city: a dense centre, a few dense quarters, sparse edges."""
    rng = np.random.default_rng(seed)
    centres = [(10.0, 53.55, 0.01, 0.5), (9.93, 53.57, 0.02, 0.2), (10.08, 53.50, 0.03, 0.2),
               (10.0, 53.55, 0.15, 0.1)]
    x, y = [], []
    for cx, cy, spread, share in centres:
        m = int(n * share)
        x.append(rng.normal(cx, spread * 1.7, m))
        y.append(rng.normal(cy, spread, m))
    return np.concatenate(x), np.concatenate(y)


def _exact(x: np.ndarray, y: np.ndarray, box: tuple[float, float, float, float]) -> int:
    return int(((x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])).sum())


def test_counts_of_windows_match_exact_counts():
    x, y = _city(50_000)
    dm = DensityMap(x, y)
    assert dm.total == len(x)
    rng = random.Random(5)
    for _ in range(200):
        lon, lat = rng.uniform(9.8, 10.2), rng.uniform(53.45, 53.65)
        half = rng.uniform(0.002, 0.05)
        box = (lon - half * 1.7, lat - half, lon + half * 1.7, lat + half)
        exact = _exact(x, y, box)
        # Only the cells the window's edges cut are estimated (entries spread evenly in them).
        edge_cells = 2 * ((box[2] - box[0]) + (box[3] - box[1])) / dm.cell + 4
        slack = edge_cells * dm.total / (dm.nx * dm.ny) * 40 + 5
        assert dm.entries(box) == pytest.approx(exact, abs=slack)
    # Cell-aligned windows are exact.
    box = (dm.x0 + 100 * dm.cell, dm.y0 + 50 * dm.cell, dm.x0 + 300 * dm.cell,
           dm.y0 + 200 * dm.cell)
    inner = (box[0] + 1e-12, box[1] + 1e-12, box[2] - 1e-12, box[3] - 1e-12)
    assert dm.entries(box) == pytest.approx(_exact(x, y, inner), abs=1e-6)


def test_radius_holds_the_target_in_dense_and_sparse_places():
    x, y = _city(50_000)
    dm = DensityMap(x, y)
    for lon, lat in [(10.0, 53.55), (9.93, 53.57), (10.3, 53.62), (9.75, 53.42)]:
        kx, ky = _metres_per_degree(lat)
        r = dm.radius(lon, lat, 40, kx, ky, start=250)
        assert r is not None

        def window(radius: float) -> tuple[float, float, float, float]:
            return (lon - radius / kx, lat - radius / ky, lon + radius / kx, lat + radius / ky)

        assert dm.entries(window(r)) >= 40
        assert dm.entries(window(r / 1.1)) < 40  # and not much more than needed
        assert 25 <= _exact(x, y, window(r)) <= 80
    # More than the map holds: no answer.
    assert dm.radius(10.0, 53.55, len(x) + 1, *_metres_per_degree(53.55), start=250) is None


def test_a_few_far_away_points_do_not_blur_the_city():
    x, y = _city(20_000)
    near = DensityMap(x, y)
    far = DensityMap(np.append(x, [11.58, 13.40, -0.12]), np.append(y, [48.14, 52.52, 51.51]))
    assert far.total == near.total  # the outliers are off the grid
    assert far.cell < near.cell * 1.5  # the grid is the city, not Europe
    assert far.cell * GRID_CELLS < 3.0  # degrees
    box = (9.98, 53.54, 10.02, 53.56)
    assert far.entries(box) == pytest.approx(near.entries(box), rel=0.05)


def test_a_single_point():
    dm = DensityMap(np.array([10.0]), np.array([53.55]))
    assert dm.total == 1
    r = dm.radius(10.01, 53.55, 1, *_metres_per_degree(53.55), start=100)
    assert r is not None and 600 < r < 800  # ~660 m east of it


def test_map_read_from_the_rtree_counts_every_entry(_spatialite_engine):
    """SpatiaLite only: PostGIS orders nearest-k by its GiST index and needs no map."""
    from mapservice.store import make_store

    from .conftest import _clean

    engine = _spatialite_engine
    _clean(engine)
    store = make_store(engine)
    records = []
    for name in POI_FILES:  # ~2,000 real Hamburg points: an R*Tree of two levels
        some = osm_poi_records(name)
        store.upsert(some, source=name, changed_by="test")
        records += some
    with engine.connect() as conn:
        dm = store._read_density_map(conn)
        depth = conn.exec_driver_sql("SELECT data FROM idx_resource_geom_node "
                                     "WHERE nodeno = 1").scalar()[1]
        rows = conn.exec_driver_sql("SELECT count(*) FROM idx_resource_geom").scalar()
    assert rows == len(records) > 1000
    assert depth >= 1  # the map was read from leaves below the root
    assert dm is not None and dm.total == pytest.approx(rows, abs=rows * 0.002)
    lat, lon = 53.5511, 9.9937
    kx, ky = _metres_per_degree(lat)
    r = dm.radius(lon, lat, 50, kx, ky, start=250)
    inside = sum(1 for rec in records
                 if abs(rec["lon"] - lon) * kx <= r and abs(rec["lat"] - lat) * ky <= r)
    assert 40 <= inside <= 80
    assert math.isfinite(r)


def test_one_thread_builds_the_map_and_the_others_use_the_old_one(_spatialite_engine):
    """Several threads of a worker searching when the map is missing or expired: the R*Tree is
    read once, not once per thread; during a rebuild the others keep the old map."""
    import threading
    import time

    from mapservice.store import make_store
    from mapservice.store import spatialite as sl

    from .conftest import _clean

    engine = _spatialite_engine
    _clean(engine)
    store = make_store(engine)
    store.upsert(osm_poi_records(POI_FILES[0]), source="poi", changed_by="test")
    reads: list[float] = []
    read = store._read_density_map

    def slow_read(conn):  # the real read, made slow enough for the threads to overlap
        reads.append(time.monotonic())
        time.sleep(0.2)
        return read(conn)

    store._read_density_map = slow_read
    results: list[object] = []

    def search() -> None:
        with engine.connect() as conn:
            results.append(store._density_map(conn))

    def run_threads() -> None:
        threads = [threading.Thread(target=search) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    run_threads()  # no map yet: one builds it, the others wait for it
    assert len(reads) == 1 and len(results) == 8 and all(r is results[0] for r in results)
    first = results[0]
    assert first is not None
    built_at, _ = store._map
    store._map = (built_at - sl._MAP_MAX_AGE_S - 1, first)  # expired
    results.clear()
    run_threads()  # one rebuilds; the others answer at once with the old map
    assert len(reads) == 2
    assert sum(r is first for r in results) >= 1 and len(results) == 8
    assert store._map[1] is not first and time.monotonic() - store._map[0] < 5
