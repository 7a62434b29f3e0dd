"""The store's compiled statement plans (``Store._plan`` / ``_Plan`` in ``store/base.py``) under
concurrent use, on both backends.

A plan is compiled on the first search of its shape and then shared by every thread of the
process (a threaded server: Flask's dev server, granian's worker threads). During development
transient 500s (a KeyError naming a bind parameter) were seen under concurrency. These tests
start from an empty plan cache, run many searches of mixed shapes (near, near + category,
near + radius, bbox, q, district, open_at, other filters, sorts, limits and offsets) from 8
threads at once, and require that no search fails and that every result equals the same
query's result run serially. A cache that lets other threads see a plan before it is complete
fails them (checked by planting that bug); the current code passes.
"""
from __future__ import annotations

import datetime as dt
import random
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from bench.generate import records
from mapservice.search import SearchQuery
from mapservice.store import base as store_base
from mapservice.store import make_store

from .conftest import BACKENDS, _clean

THREADS = 8
ROWS = 300
QUERIES = 144  # per round; every shape above comes up several times
BERLIN = ZoneInfo("Europe/Berlin")


def _queries(recs: list[dict], seed: int) -> list[SearchQuery]:
    """Queries of many shapes (and, within a shape, different values, limits and offsets)."""
    rng = random.Random(seed)
    lats = [r["lat"] for r in recs]
    lons = [r["lon"] for r in recs]
    box = (min(lons), min(lats), max(lons), max(lats))
    categories = sorted({c for r in recs for c in r["categories"]})
    languages = sorted({c for r in recs for c in r["languages"]})
    stadtteile = sorted({r["stadtteil"] for r in recs if r.get("stadtteil")})
    bezirke = sorted({r["bezirk"] for r in recs if r.get("bezirk")})
    words = ["sprach", "beratung", "jugend", "familien", "treff", "Bücherhalle", "kochen",
             "stadtteilzentrum", "offen alle", "*", "zzzz-nothing"]
    sorts = [None, "name", "verified"]

    def point() -> tuple[float, float]:
        return (round(rng.uniform(box[1], box[3]), 5), round(rng.uniform(box[0], box[2]), 5))

    def page() -> dict:
        return {"limit": rng.choice([1, 5, 10, 25, 50]), "offset": rng.choice([0, 0, 3, 10])}

    def sub_box() -> tuple[float, float, float, float]:
        lat, lon = point()
        d = rng.uniform(0.01, 0.08)
        return (round(lon - d, 5), round(lat - d / 2, 5), round(lon + d, 5),
                round(lat + d / 2, 5))

    when = dt.datetime(2026, 3, 4, 10, 30, tzinfo=BERLIN)  # a Wednesday morning
    makers = [
        lambda: SearchQuery(near=point(), limit=10),
        lambda: SearchQuery(near=point(), **page()),
        lambda: SearchQuery(near=point(), categories=(rng.choice(categories),), limit=10),
        lambda: SearchQuery(near=point(), categories=tuple(rng.sample(categories, 2)), **page()),
        lambda: SearchQuery(near=point(), radius=rng.choice([500.0, 2000.0]), **page()),
        lambda: SearchQuery(near=point(), languages=(rng.choice(languages),),
                            cost=("free",), **page()),
        lambda: SearchQuery(near=point(), text=rng.choice(words), limit=10),
        lambda: SearchQuery(near=point(), sort="name", limit=10),
        lambda: SearchQuery(bbox=sub_box(), limit=rng.choice([10, 100, 1000])),
        lambda: SearchQuery(bbox=sub_box(), categories=(rng.choice(categories),), **page()),
        lambda: SearchQuery(text=rng.choice(words), sort=rng.choice(sorts), **page()),
        lambda: SearchQuery(text=rng.choice(words), bbox=box, limit=10),
        lambda: SearchQuery(districts=(rng.choice(stadtteile),), **page()),
        lambda: SearchQuery(districts=(rng.choice(bezirke), rng.choice(stadtteile)),
                            sort=rng.choice(sorts), **page()),
        lambda: SearchQuery(open_at=when, **page()),
        lambda: SearchQuery(open_at=when, near=point(), limit=10),
        lambda: SearchQuery(open_at=when + dt.timedelta(hours=rng.choice([0, 9, 14])),
                            categories=(rng.choice(categories),), **page()),
        lambda: SearchQuery(wheelchair=("yes",), audiences=("everyone",),
                            sort=rng.choice(sorts), **page()),
        lambda: SearchQuery(updated_since=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
                            **page()),
        lambda: SearchQuery(statuses=("published", "archived"), near=point(), limit=10),
        lambda: SearchQuery(**page()),
    ]
    return [rng.choice(makers)() for _ in range(QUERIES)]


def _snapshot(result) -> tuple:
    """A comparable value of a SearchResult (hits in order, with every property)."""
    return (result.next_offset,
            [(sorted(h.properties.items(), key=lambda kv: kv[0]), h.lon, h.lat, h.distance_m)
             for h in result.hits])


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request):
    """(engine, records): ROWS generated resources (store.upsert, the ORM path), loaded once
    per backend for the module (as tests/test_search.py does)."""
    engine = request.getfixturevalue(f"_{request.param}_engine")
    _clean(engine)
    recs = list(islice(records(ROWS, seed=7), ROWS))
    make_store(engine).upsert(recs, source="bench", changed_by="test")
    yield engine, recs
    _clean(engine)


@pytest.fixture
def fast_switching():
    """Let threads switch every few microseconds (default 5 ms), so they interleave inside
    the plan cache's code and not only around blocking driver calls."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def _run_serially(store, queries: list[SearchQuery]) -> list:
    return [_snapshot(store.search(q)) for q in queries]


def _run_concurrently(store, queries: list[SearchQuery]) -> list:
    """Every query once, on THREADS threads that start together; results in query order
    (an exception is returned in its query's place)."""
    start = threading.Barrier(THREADS)

    def worker(k: int) -> list[tuple[int, object]]:
        start.wait()
        out = []
        for i in range(k, len(queries), THREADS):
            try:
                out.append((i, _snapshot(store.search(queries[i]))))
            except Exception as exc:  # noqa: BLE001 - reported by the test
                out.append((i, exc))
        return out

    results: list = [None] * len(queries)
    with ThreadPoolExecutor(THREADS) as pool:
        for part in pool.map(worker, range(THREADS)):
            for i, value in part:
                results[i] = value
    return results


def _check(serial: list, concurrent: list, queries: list[SearchQuery]) -> None:
    errors = [(queries[i], value) for i, value in enumerate(concurrent)
              if isinstance(value, BaseException)]
    assert not errors, f"{len(errors)} searches failed, first: {errors[0][0]!r}: " \
                       f"{errors[0][1].__class__.__name__}: {errors[0][1]}"
    wrong = [queries[i] for i, (a, b) in enumerate(zip(serial, concurrent)) if a != b]
    assert not wrong, f"{len(wrong)} of {len(queries)} results differ, first: {wrong[0]!r}"


@pytest.mark.parametrize("max_plans", [None, 3], ids=["cache", "tiny-cache"])
def test_concurrent_searches_equal_serial_ones(loaded, fast_switching, monkeypatch, max_plans):
    """8 threads on a fresh store (empty plan cache), then again on the same store (plans
    compiled, another order); the results must equal the serial ones. ``tiny-cache``: the
    cache holds 3 plans, so it is emptied again and again while other threads compile and
    run plans (one round)."""
    engine, recs = loaded
    queries = _queries(recs, seed=20260304)
    serial = _run_serially(make_store(engine), queries)
    # the data really exercise the shapes: most queries find something
    assert sum(1 for s in serial if s[1]) > len(queries) * 0.6
    if max_plans is not None:
        monkeypatch.setattr(store_base, "_MAX_PLANS", max_plans)
    store = make_store(engine)
    assert not store._plans  # the first round starts from an empty plan cache
    _check(serial, _run_concurrently(store, queries), queries)
    assert store._plans, "the searches went through compiled plans"
    if max_plans is not None:
        return  # a cache of 3 is cold all the time: a second round adds nothing
    order = list(range(len(queries)))
    random.Random(1).shuffle(order)
    shuffled = [queries[i] for i in order]
    _check([serial[i] for i in order], _run_concurrently(store, shuffled), shuffled)


def test_one_shape_many_values_from_cold(loaded, fast_switching):
    """The race most likely to hit the first requests after a start: all threads search the
    same few shapes with different values at the same moment, from an empty cache."""
    engine, recs = loaded
    rng = random.Random(5)
    queries = []
    for _ in range(96):
        r = rng.choice(recs)
        lat, lon = r["lat"] + rng.uniform(-0.01, 0.01), r["lon"] + rng.uniform(-0.01, 0.01)
        queries.append(rng.choice([
            SearchQuery(near=(lat, lon), limit=10),
            SearchQuery(near=(lat, lon), categories=(rng.choice(r["categories"]),), limit=10),
            SearchQuery(bbox=(lon - 0.02, lat - 0.01, lon + 0.02, lat + 0.01), limit=1000),
            SearchQuery(text=rng.choice(["sprach", "jugend", "beratung"]), limit=10),
        ]))
    serial = _run_serially(make_store(engine), queries)
    for _ in range(2):
        _check(serial, _run_concurrently(make_store(engine), queries), queries)
