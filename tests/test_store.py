"""The store on both backends: upsert, versions, nearest-k, bbox, filters, confidentiality."""
from __future__ import annotations

import math
import random

import pytest
from pyproj import Geod

from mapservice.search import SearchQuery
from mapservice.store import make_store
from mapservice.store.base import approximate

from .conftest import osm_poi_records

GEOD = Geod(ellps="WGS84")


def _rec(i: int, lat: float, lon: float, **extra) -> dict:
    return {"source_id": f"t{i}", "name": f"Place {i}", "lat": lat, "lon": lon,
            "categories": ["library"], "languages": ["de"], **extra}


def test_upsert_is_idempotent_and_versions_only_changes(store):
    records = osm_poi_records(limit=40)
    first = store.upsert(records, source="osm", changed_by="test")
    assert (first.created, first.updated, first.unchanged) == (40, 0, 0)
    again = store.upsert(records, source="osm", changed_by="test")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 40)

    changed = dict(records[3], name=records[3]["name"] + " (neu)", lat=records[3]["lat"] + 0.001)
    report = store.upsert([changed], source="osm", changed_by="test")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 0)
    hit = next(h for h in store.search(SearchQuery(limit=1000)).hits
               if h.properties["name"] == changed["name"])
    history = store.history(hit.properties["uid"])
    assert [v["version"] for v in history] == [1, 2]
    assert set(history[1]["diff"]) == {"name", "lat"}
    assert history[1]["diff"]["name"] == [records[3]["name"], changed["name"]]
    assert store.count() == 40


def test_same_source_id_in_other_source_is_another_resource(store):
    store.upsert([_rec(1, 53.55, 10.0)], source="a", changed_by="test")
    report = store.upsert([_rec(1, 53.55, 10.0)], source="b", changed_by="test")
    assert report.created == 1 and store.count() == 2


def test_locked_field_is_kept_and_reported(store):
    store.upsert([_rec(1, 53.55, 10.0)], source="a", changed_by="test")
    from sqlalchemy import select, update

    from mapservice.models import Resource

    with store.session() as s, s.begin():
        s.execute(update(Resource).values(locked_fields=["name"]))
    report = store.upsert([_rec(1, 53.55, 10.0, name="Renamed", phone="+49 40 1")],
                          source="a", changed_by="test")
    assert report.updated == 1
    assert report.conflicts == [{"source_id": "t1", "field": "name", "kept": "Place 1",
                                 "incoming": "Renamed"}]
    with store.session() as s:
        res = s.scalar(select(Resource))
        assert (res.name, res.phone) == ("Place 1", "+49 40 1")


def test_archive_missing_never_deletes(store):
    store.upsert([_rec(i, 53.5 + i / 100, 10.0) for i in range(5)], source="a", changed_by="t")
    assert store.archive_missing("a", ["t0", "t1"], changed_by="t") == 3
    assert store.count() == 2
    assert store.count(statuses=("archived",)) == 3


def _true_nearest(records, lat, lon, k, pred=lambda r: True):
    dists = []
    for r in records:
        if pred(r):
            _, _, d = GEOD.inv(lon, lat, r["lon"], r["lat"])
            dists.append((d, r["source_id"]))
    return sorted(dists)[:k]


def test_nearest_k_matches_independent_geodesic_distances(store):
    records = osm_poi_records()
    rng = random.Random(7)
    for i, r in enumerate(records):
        r["categories"] = [rng.choice(["library", "youth_centre", "counselling"])]
        r["languages"] = rng.sample(["de", "en", "ar", "fa", "tr"], 2)
    store.upsert(records, source="osm", changed_by="test")
    for _ in range(15):
        lat, lon = rng.uniform(53.45, 53.7), rng.uniform(9.75, 10.25)
        for query, pred in [
            (SearchQuery(near=(lat, lon), limit=10), lambda r: True),
            (SearchQuery(near=(lat, lon), limit=7, categories=("youth_centre",)),
             lambda r: "youth_centre" in r["categories"]),
            (SearchQuery(near=(lat, lon), limit=5, categories=("library", "counselling"),
                         languages=("ar",)),
             lambda r: bool({"library", "counselling"} & set(r["categories"]))
             and "ar" in r["languages"]),
        ]:
            hits = store.search(query).hits
            expected = _true_nearest(records, lat, lon, query.limit, pred)
            assert len(hits) == len(expected)
            for hit, (dist, _sid) in zip(hits, expected):
                assert hit.distance_m == pytest.approx(dist, abs=0.5)
            assert [h.distance_m for h in hits] == sorted(h.distance_m for h in hits)


def test_radius_and_bbox_filters(store):
    records = osm_poi_records()
    store.upsert(records, source="osm", changed_by="test")
    lat, lon = 53.5511, 9.9937
    hits = store.search(SearchQuery(near=(lat, lon), radius=1500, limit=1000)).hits
    expected = [d for d, _ in _true_nearest(records, lat, lon, 10_000) if d <= 1500]
    assert len(hits) == len(expected) > 0
    assert all(h.distance_m <= 1500 for h in hits)

    box = (9.95, 53.54, 10.02, 53.58)
    hits = store.search(SearchQuery(bbox=box, limit=1000)).hits
    inside = [r for r in records if box[0] <= r["lon"] <= box[2] and box[1] <= r["lat"] <= box[3]]
    assert len(hits) == len(inside) > 0
    assert all(box[0] <= h.lon <= box[2] and box[1] <= h.lat <= box[3] for h in hits)


def test_bbox_edges_are_exact(store):
    # points 1e-7 degrees outside the box must not come back (the index rounds to float4)
    box = (10.0, 53.5, 10.01, 53.51)
    recs = [_rec(0, 53.505, 10.0 - 1e-7), _rec(1, 53.505, 10.01 + 1e-7),
            _rec(2, 53.5 - 1e-7, 10.005), _rec(3, 53.51 + 1e-7, 10.005), _rec(4, 53.505, 10.005),
            _rec(5, 53.5, 10.0)]
    store.upsert(recs, source="a", changed_by="t")
    names = sorted(h.properties["name"] for h in store.search(SearchQuery(bbox=box)).hits)
    assert names == ["Place 4", "Place 5"]


def test_paging_and_sort_by_name(store):
    store.upsert([_rec(i, 53.5 + i / 1000, 10.0, name=f"N{i:02d}") for i in range(25)],
                 source="a", changed_by="t")
    first = store.search(SearchQuery(sort="name", limit=10))
    assert [h.properties["name"] for h in first.hits] == [f"N{i:02d}" for i in range(10)]
    assert first.next_offset == 10
    last = store.search(SearchQuery(sort="name", limit=10, offset=20))
    assert [h.properties["name"] for h in last.hits] == [f"N{i:02d}" for i in range(20, 25)]
    assert last.next_offset is None


def test_sort_by_name_is_alphabetical_on_both_backends(store):
    # case, accents, "ß" and punctuation do not decide; names without Latin letters come last
    expected = ["apfel Treff", "Ärztehaus", "Bücherhalle", "elternschule",
                "Öffentliche Bücherhalle", "Strasse 2", "Straßenkinder", "Zentrum", "Центр",
                "مركز"]
    shuffled = [expected[i] for i in (7, 9, 0, 4, 8, 2, 6, 1, 5, 3)]
    store.upsert([_rec(i, 53.5 + i / 1000, 10.0, name=name) for i, name in enumerate(shuffled)],
                 source="a", changed_by="t")
    names = [h.properties["name"] for h in store.search(SearchQuery(sort="name")).hits]
    assert names == expected
    paged = [h.properties["name"] for offset in range(0, 10, 3)
             for h in store.search(SearchQuery(sort="name", limit=3, offset=offset)).hits]
    assert paged == expected
    near = store.search(SearchQuery(sort="name", near=(53.5, 10.0), limit=4, offset=4)).hits
    assert [h.properties["name"] for h in near] == expected[4:8]


def test_filters_cost_wheelchair_audience(store):
    store.upsert([_rec(1, 53.55, 10.0, cost="free", wheelchair="yes", audiences=["youth"]),
                  _rec(2, 53.56, 10.0, cost="paid", wheelchair="limited", audiences=["seniors"]),
                  _rec(3, 53.57, 10.0, cost="free", wheelchair="no", audiences=["youth"])],
                 source="a", changed_by="t")
    names = lambda q: sorted(h.properties["name"] for h in store.search(q).hits)  # noqa: E731
    assert names(SearchQuery(cost=("free",))) == ["Place 1", "Place 3"]
    assert names(SearchQuery(wheelchair=("yes", "limited"))) == ["Place 1", "Place 2"]
    assert names(SearchQuery(audiences=("seniors",))) == ["Place 2"]
    assert names(SearchQuery(audiences=("youth",), wheelchair=("no",))) == ["Place 3"]


def test_confidential_location_is_never_exact(store):
    lat, lon = 53.56789, 9.98765
    store.upsert([_rec(1, lat, lon, location_confidential=True, address="Geheimweg 1")],
                 source="a", changed_by="t")
    (hit,) = store.search(SearchQuery()).hits
    assert (hit.lon, hit.lat) == approximate(lon, lat)
    assert (hit.lon, hit.lat) != (lon, lat)
    assert hit.properties["address"] is None
    # distance is measured to the approximate point, so it cannot be used to trilaterate
    (near,) = store.search(SearchQuery(near=(lat, lon), limit=1)).hits
    _, _, to_approx = GEOD.inv(lon, lat, *approximate(lon, lat))
    assert near.distance_m == pytest.approx(to_approx, abs=0.5)
    # re-importing the same exact point is "unchanged"
    again = store.upsert([_rec(1, lat, lon, location_confidential=True, address="Geheimweg 1")],
                         source="a", changed_by="t")
    assert again.unchanged == 1


def test_get_by_id_and_unpublished(store):
    store.upsert([_rec(1, 53.55, 10.0), _rec(2, 53.55, 10.01, status="draft")],
                 source="a", changed_by="t")
    (hit,) = store.search(SearchQuery()).hits
    assert store.get(hit.properties["uid"]).properties["name"] == "Place 1"
    assert store.get("00000000-0000-0000-0000-000000000000") is None
    assert math.isclose(hit.lat, 53.55)


def test_nearest_uses_the_spatial_index(store, engine, backend):
    """PostGIS orders by KNN ``<->`` on the GiST index; SpatiaLite reads an R*Tree window."""
    from sqlalchemy import event

    store.upsert(osm_poi_records(), source="osm", changed_by="test")
    statements: list[tuple[str, object]] = []

    def _capture(conn, cursor, statement, parameters, context, many):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", _capture)
    try:
        store.search(SearchQuery(near=(53.55, 10.0), limit=10, categories=("community_centre",)))
    finally:
        event.remove(engine, "before_cursor_execute", _capture)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cur = raw.cursor()
        plans = []
        if backend == "postgis":
            cur.execute("ANALYZE resource")
            cur.execute("SET enable_seqscan = off")  # tiny table: show the index can serve it
            knn = [s for s in statements if "<->" in s[0]]
            assert knn, "nearest-k must use the KNN operator"
            cur.execute("EXPLAIN " + knn[0][0], knn[0][1])
            plan = "\n".join(r[0] for r in cur.fetchall())
            assert "idx_resource_geog" in plan and "Order By" in plan, plan
        else:
            for statement, params in statements:
                if statement.startswith(("SELECT (SELECT max(resource.updated_at)",  # its own
                                         "BEGIN")):  # mapservice.db begins transactions
                    continue
                cur.execute("EXPLAIN QUERY PLAN " + statement, params)
                plans.append("\n".join(str(r) for r in cur.fetchall()))
            assert all("idx_resource_geom" in p for p in plans), plans
            assert not any("knn" in s.lower() for s, _ in statements)
        cur.close()


def test_postgis_plans_bbox_searches_with_their_box_but_prepares_nearest(_postgis_engine):
    """A prepared bbox statement gets one generic plan that guesses one row per box and reads
    the heap in index order; it must be planned per call. Nearest-k stays prepared."""
    from .conftest import _clean

    from mapservice.db import make_engine

    _clean(_postgis_engine)
    make_store(_postgis_engine).upsert(osm_poi_records(), source="osm", changed_by="test")
    # One pooled connection: prepared statements are the connection's own.
    engine = make_engine(_postgis_engine.url.render_as_string(hide_password=False),
                         pool_size=1, max_overflow=0)
    store = make_store(engine)
    box = (9.95, 53.54, 10.02, 53.58)
    expected = sorted(h.properties["uid"] for h in store.search(
        SearchQuery(bbox=box, limit=1000)).hits)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("DEALLOCATE ALL")
    for _ in range(8):
        hits = store.search(SearchQuery(bbox=box, limit=1000)).hits
        assert sorted(h.properties["uid"] for h in hits) == expected
        store.search(SearchQuery(near=(53.55, 10.0), limit=10))
    with store.engine.connect() as conn:
        prepared = [row[0] for row in conn.exec_driver_sql(
            "SELECT statement FROM pg_prepared_statements")]
    engine.dispose()
    assert any("<->" in s for s in prepared), prepared  # nearest-k: prepared
    assert not any("ST_MakeEnvelope" in s for s in prepared), prepared  # bbox: never


def test_sphere_to_ellipsoid_bound_holds_in_postgis(_postgis_engine):
    # PostGIS nearest-k finds its reach on the sphere (half the cost) and widens it by
    # SPHERE_TO_ELLIPSOID; the bound must hold for any pair of points, poles included
    from sqlalchemy import text

    from mapservice.store.postgis import SPHERE_TO_ELLIPSOID, SPHERE_WINDOW

    rng = random.Random(11)
    pairs = []
    for _ in range(400):
        lat, lon = rng.uniform(-89.9, 89.9), rng.uniform(-180, 180)
        scale = rng.choice([0.0005, 0.01, 0.5, 5])  # metres to hundreds of kilometres
        pairs.append((lon, lat, lon + rng.uniform(-scale, scale),
                      max(-90.0, min(90.0, lat + rng.uniform(-scale, scale)))))
    with _postgis_engine.connect() as conn:
        worst, least = 0.0, 2.0
        for lon1, lat1, lon2, lat2 in pairs:
            ellipsoid, sphere, knn = conn.execute(text(
                "SELECT ST_Distance(a, b, true), ST_Distance(a, b, false), a <-> b FROM "
                "(SELECT geography(ST_SetSRID(ST_MakePoint(:x1, :y1), 4326)) a, "
                "geography(ST_SetSRID(ST_MakePoint(:x2, :y2), 4326)) b) p"),
                {"x1": lon1, "y1": lat1, "x2": lon2, "y2": lat2}).one()
            if sphere > 0:
                assert knn == pytest.approx(sphere, rel=1e-9)  # <-> is this sphere
                worst = max(worst, ellipsoid / sphere)
                least = min(least, ellipsoid / sphere)
    assert 1.003 < worst <= SPHERE_TO_ELLIPSOID  # near the poles the ratio nears 1.0045
    # ... and at least 0.9944 (the equator's meridians): the window of SPHERE_WINDOW holds
    # every place within SPHERE_TO_ELLIPSOID of the k-th
    assert SPHERE_TO_ELLIPSOID / least <= SPHERE_WINDOW and least < 0.997


def test_nearest_is_exact_beside_a_dense_area_and_on_a_ring(store):
    # (1) a point outside the city: its ten nearest are kilometres away while a dense area
    # lies within the square around that reach; (2) 150 places on a ring around a point,
    # all about equally far: more than the first read holds lie within the bound
    geod = Geod(ellps="WGS84")
    rng = random.Random(8)
    records = [_rec(i, 53.55 + rng.uniform(-0.01, 0.01), 10.0 + rng.uniform(-0.015, 0.015))
               for i in range(1500)]
    records += [_rec(2000 + i, 53.60 + rng.uniform(0, 0.06), 9.80 + rng.uniform(0, 0.08))
                for i in range(12)]
    ring_lat, ring_lon = 53.40, 10.30
    for i in range(150):
        lon, lat, _ = geod.fwd(ring_lon, ring_lat, i * 360 / 150, 1000 + (i % 7) * 0.3)
        records.append(_rec(3000 + i, lat, lon))
    store.upsert(records, source="t", changed_by="test")
    points = {r["source_id"]: (r["lon"], r["lat"]) for r in records}

    def expected(lat, lon, k):
        dist = sorted((geod.inv(lon, lat, x, y)[2], sid) for sid, (x, y) in points.items())
        return [d for d, _ in dist[:k]]

    for (lat, lon), k in (((53.665, 9.81), 10), ((ring_lat, ring_lon), 11),
                          ((ring_lat, ring_lon), 60)):
        hits = store.search(SearchQuery(near=(lat, lon), limit=k)).hits
        assert [h.distance_m for h in hits] == pytest.approx(expected(lat, lon, k), abs=0.06)
    paged = [h.distance_m for offset in (0, 20, 40)
             for h in store.search(SearchQuery(near=(ring_lat, ring_lon), limit=20,
                                               offset=offset)).hits]
    assert paged == pytest.approx(expected(ring_lat, ring_lon, 60), abs=0.06)
    # a radius: everything within it, beside the dense area and right at the ring's edge
    for (lat, lon), radius in (((53.665, 9.81), 7000.0), ((ring_lat, ring_lon), 1001.05)):
        hits = store.search(SearchQuery(near=(lat, lon), radius=radius, limit=1000)).hits
        want = [d for d in expected(lat, lon, len(points)) if d <= radius]
        assert want and [h.distance_m for h in hits] == pytest.approx(want, abs=0.06)
    if store.backend == "postgis":  # the ring needs a second, larger read: it was taken
        from sqlalchemy import event

        reads: list[str] = []

        def _capture(conn, cursor, statement, *args):
            if "<->" in statement:
                reads.append(statement)

        event.listen(store.engine, "before_cursor_execute", _capture)
        try:
            store.search(SearchQuery(near=(ring_lat, ring_lon), limit=10))
            assert len(reads) >= 2
            reads.clear()
            store.search(SearchQuery(near=(53.665, 9.81), limit=10))
            assert len(reads) == 1
        finally:
            event.remove(store.engine, "before_cursor_execute", _capture)
