"""``Store.bulk_upsert`` on both backends: the same result as the ORM path, idempotent,
versions only on change, locked fields kept, confidential points hidden, indexes rebuilt."""
from __future__ import annotations

import random

import pytest
from pyproj import Geod
from sqlalchemy import func, select, text, update

from bench.generate import records
from mapservice.models import Organization, Resource, ResourceVersion
from mapservice.search import SearchQuery
from mapservice.store.base import CONTENT_FIELDS, approximate

GEOD = Geod(ellps="WGS84")
# Twice the pipeline's bulk threshold: every kind of row (confidential ones, shared
# organisations) and enough for the rebuilt indexes to matter.
N = 10_000
# Compared with the ORM path, which writes ~100-1,000 rows/s (a flush and a full-text trigger
# per row): the size of an ordinary small import.
N_ORM = 2_000


@pytest.fixture(scope="module")
def generated() -> list[dict]:
    recs = list(records(N, seed=11))
    assert sum(r["location_confidential"] for r in recs) > 20  # the generator makes ~0.5 %
    assert sum(r["organization"] is not None for r in recs) > N // 5
    return recs


def _state(store, source: str) -> dict[str, dict]:
    """Everything an import decides about each resource of ``source``, keyed by source id
    (not ids, uids or timestamps: those differ between two loads by construction)."""
    r = Resource
    columns = [getattr(r, name) for name in CONTENT_FIELDS
               if name not in ("lat", "lon", "organization")]
    stmt = (select(r.source_id, r.slug, r.version, r.locked_fields, r.exact_lat, r.exact_lon,
                   func.ST_X(r.geom), func.ST_Y(r.geom), Organization.name,
                   Organization.website, *columns)
            .outerjoin(Organization, Organization.id == r.organization_id)
            .where(r.source == source))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {row[0]: tuple(round(v, 7) if isinstance(v, float) else v for v in row[1:])
            for row in rows}


def _versions(store, source: str) -> dict[str, list[tuple]]:
    v = ResourceVersion
    stmt = (select(Resource.source_id, v.version, v.changed_by, v.data, v.diff)
            .join(Resource, Resource.id == v.resource_id).where(Resource.source == source)
            .order_by(Resource.source_id, v.version))
    out: dict[str, list[tuple]] = {}
    with store.engine.connect() as conn:
        for sid, version, by, data, diff in conn.execute(stmt):
            out.setdefault(sid, []).append((version, by, data, diff))
    return out


def _no_leftovers(store) -> None:
    """PostGIS: the full-text trigger is on and no work table of the bulk path is left."""
    if store.backend != "postgis":
        return
    with store.engine.connect() as conn:
        assert conn.execute(text(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'resource_search_vector'")
        ).scalar_one() == "O"
        assert conn.execute(text(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'mapservice_bulk_%'")
        ).scalar_one() == 0


def _documents(store, source: str) -> dict[str, str]:
    """The full-text document of each resource of ``source``: the ORM path's come from the
    trigger, the bulk path's first load computes them set-based (PostGIS) — the same text.
    On PostGIS also: the trigger is on again and the bulk path's work tables are gone."""
    _no_leftovers(store)
    with store.engine.connect() as conn:
        if store.backend == "postgis":
            sql = "SELECT source_id, search_vector::text FROM resource WHERE source = :s"
        else:
            sql = ("SELECT r.source_id, f.name || '|' || coalesce(f.description, '') || '|' || "
                   "coalesce(f.organization, '') FROM resource AS r "
                   "JOIN resource_fts AS f ON f.rowid = r.id WHERE r.source = :s")
        docs = dict(conn.execute(text(sql), {"s": source}).all())
    assert len(docs) > 0 and all(docs.values())
    return docs


def _count(store, model) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def _changed(recs: list[dict]) -> list[dict]:
    """Every 10th record changed in a different field; org of every 25th renamed."""
    out = []
    for i, rec in enumerate(recs):
        rec = dict(rec)
        if i % 10 == 0:
            field = ("name", "lat", "categories", "last_verified", "organization")[i // 10 % 5]
            if field == "name":
                rec["name"] += " (neu)"
            elif field == "lat":
                rec["lat"] += 0.0003
            elif field == "categories":
                rec["categories"] = (["crisis_help"] if rec["categories"] != ["crisis_help"]
                                     else ["health"])
            elif field == "last_verified":
                rec["last_verified"] = "2026-01-02"
            else:
                rec["organization"] = {"name": f"Neuer Träger {i % 7}"}
        out.append(rec)
    return out


def test_bulk_equals_orm_and_is_idempotent(store, generated):
    recs = generated[:N_ORM]
    bulk = store.bulk_upsert(recs, source="bulk", changed_by="import:x")  # empty table path
    orm = store.upsert(recs, source="orm", changed_by="import:x")
    assert (bulk.created, bulk.updated, bulk.unchanged) == (N_ORM, 0, 0)
    assert (orm.created, orm.updated, orm.unchanged) == (N_ORM, 0, 0)
    assert _state(store, "bulk") == _state(store, "orm")
    assert _versions(store, "bulk") == _versions(store, "orm")
    assert _documents(store, "bulk") == _documents(store, "orm")

    versions = _count(store, ResourceVersion)
    again = store.bulk_upsert(recs, source="bulk", changed_by="import:x")
    assert (again.created, again.updated, again.unchanged, again.conflicts) == (0, 0, N_ORM, [])
    assert _count(store, ResourceVersion) == versions
    # Rows the ORM wrote are unchanged for the bulk path too, and the other way round.
    assert store.bulk_upsert(recs, source="orm", changed_by="import:x").unchanged == N_ORM
    assert store.upsert(recs[:500], source="bulk", changed_by="import:x").unchanged == 500


def test_changed_subset_is_updated_with_versions_like_orm(store, generated):
    recs = generated[:N_ORM]
    store.bulk_upsert(recs, source="bulk", changed_by="import:x")
    store.upsert(recs, source="orm", changed_by="import:x")
    changed = _changed(recs)
    bulk = store.bulk_upsert(changed, source="bulk", changed_by="import:y")
    orm = store.upsert(changed, source="orm", changed_by="import:y")
    assert (bulk.created, bulk.updated, bulk.unchanged) == (0, 200, 1800)
    assert (orm.created, orm.updated, orm.unchanged) == (0, 200, 1800)
    assert _state(store, "bulk") == _state(store, "orm")
    versions = _versions(store, "bulk")
    assert versions == _versions(store, "orm")
    assert sum(len(v) for v in versions.values()) == 2200
    first = versions[recs[0]["source_id"]]
    assert [v[0] for v in first] == [1, 2] and first[1][1] == "import:y"
    assert first[1][3] == {"name": [recs[0]["name"], recs[0]["name"] + " (neu)"]}
    moved = versions[recs[10]["source_id"]][1][3]
    assert set(moved) == {"lat"}
    assert moved["lat"][1] == pytest.approx(recs[10]["lat"] + 0.0003, abs=1e-7)
    # new records and changed ones in one run
    more = list(records(N + 100, seed=11))[N:]
    mixed = store.bulk_upsert([*changed, *more], source="bulk", changed_by="import:z")
    assert (mixed.created, mixed.updated, mixed.unchanged) == (100, 0, 2000)


def test_locked_fields_are_kept_and_reported_like_orm(store, generated):
    recs = generated[:300]
    store.bulk_upsert(recs, source="bulk", changed_by="import:x")
    store.upsert(recs, source="orm", changed_by="import:x")
    locked = {r["source_id"] for r in recs[::3]}
    with store.session() as s, s.begin():
        s.execute(update(Resource).where(Resource.source_id.in_(locked))
                  .values(locked_fields=["name", "organization"]))
    changed = [dict(r, name=r["name"] + " neu", phone="+49 40 66969999",
                    organization={"name": "Anderer Träger"}) for r in recs]
    bulk = store.bulk_upsert(changed, source="bulk", changed_by="import:y")
    orm = store.upsert(changed, source="orm", changed_by="import:y")
    assert (bulk.updated, bulk.unchanged) == (orm.updated, orm.unchanged) == (300, 0)
    assert sorted(bulk.conflicts, key=str) == sorted(orm.conflicts, key=str)
    assert {c["source_id"] for c in bulk.conflicts} == locked
    assert {c["field"] for c in bulk.conflicts} <= {"name", "organization"}
    with store.engine.connect() as conn:
        kept = dict(conn.execute(select(Resource.source_id, Resource.name).where(
            Resource.source == "bulk", Resource.source_id.in_(locked))).all())
    assert kept == {r["source_id"]: r["name"] for r in recs if r["source_id"] in locked}
    # A locked organisation stays linked (the ORM path relinks it; its version data agrees).
    with store.engine.connect() as conn:
        orgs = dict(conn.execute(
            select(Resource.source_id, Organization.name)
            .outerjoin(Organization, Organization.id == Resource.organization_id)
            .where(Resource.source == "bulk")).all())
    for rec in recs:
        expected = (rec["organization"] or {}).get("name") if rec["source_id"] in locked \
            else "Anderer Träger"
        assert orgs[rec["source_id"]] == expected
    again = store.bulk_upsert(changed, source="bulk", changed_by="import:y")
    assert again.updated == 0 and again.unchanged == 300  # conflicts are reported again
    assert len(again.conflicts) == len(bulk.conflicts)


def test_confidential_rows_get_the_approximate_point(store, generated):
    recs = [dict(r, location_confidential=True) for r in generated[:200]]
    store.bulk_upsert(recs, source="bulk", changed_by="x")
    with store.engine.connect() as conn:
        rows = conn.execute(select(Resource.source_id, func.ST_X(Resource.geom),
                                   func.ST_Y(Resource.geom), Resource.exact_lat,
                                   Resource.exact_lon)).all()
    by_id = {r["source_id"]: r for r in recs}
    for sid, x, y, exact_lat, exact_lon in rows:
        rec = by_id[sid]
        assert (exact_lat, exact_lon) == (pytest.approx(rec["lat"]), pytest.approx(rec["lon"]))
        assert (x, y) == tuple(pytest.approx(v) for v in approximate(rec["lon"], rec["lat"]))
    hits = store.search(SearchQuery(limit=1000)).hits
    assert len(hits) == 200
    assert all(h.properties["address"] is None for h in hits)
    assert {(h.lon, h.lat) for h in hits} <= {approximate(r["lon"], r["lat"]) for r in recs}
    assert store.bulk_upsert(recs, source="bulk", changed_by="x").unchanged == 200


def test_search_is_correct_after_a_bulk_load(store, generated, backend):
    store.bulk_upsert(generated, source="bulk", changed_by="x")
    shown = [r for r in generated if not r["location_confidential"]]
    rng = random.Random(5)
    for _ in range(8):
        lat, lon = rng.uniform(53.48, 53.65), rng.uniform(9.85, 10.15)
        hits = store.search(SearchQuery(near=(lat, lon), limit=10)).hits
        expected = sorted(GEOD.inv(lon, lat, r["lon"], r["lat"])[2] for r in shown)[:10]
        got = [h.distance_m for h in hits if not h.properties["location_confidential"]]
        assert got == pytest.approx(expected[:len(got)], abs=0.5)
        assert len(got) >= 9  # at most a confidential cell centre comes between
        box = (lon - 0.01, lat - 0.006, lon + 0.01, lat + 0.006)
        inside = sum(box[0] <= r["lon"] <= box[2] and box[1] <= r["lat"] <= box[3]
                     for r in shown)
        found = store.search(SearchQuery(bbox=box, limit=1000)).hits
        assert sum(not h.properties["location_confidential"] for h in found) == inside
    # full text goes through the index the load rebuilt
    hits = store.search(SearchQuery(text="Sprachcafe Ottensen", limit=1000)).hits
    expected = [r for r in generated if r["name"].startswith("Sprachcafé")
                and "Ottensen" in r["name"]]
    assert len(hits) == len(expected) > 0
    with store.engine.connect() as conn:
        if backend == "spatialite":
            assert conn.execute(text("SELECT rtreecheck('idx_resource_geom')")).scalar() == "ok"
            assert conn.execute(text("SELECT count(*) FROM idx_resource_geom")).scalar() == N
            triggers = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE "
                                         "type = 'trigger' AND tbl_name = 'resource'")).scalar()
            assert triggers >= 10  # SpatiaLite's and the full-text ones are back
            # Ids (SQLite's storage order) follow a Z-order of the points: consecutive rows
            # are neighbours, unlike in the input's order.
            points = conn.execute(text(
                "SELECT ST_X(geom), ST_Y(geom) FROM resource ORDER BY id")).all()
            stored = sum(abs(x2 - x1) + abs(y2 - y1)
                         for (x1, y1), (x2, y2) in zip(points, points[1:]))
            given = sum(abs(b["lon"] - a["lon"]) + abs(b["lat"] - a["lat"])
                        for a, b in zip(generated, generated[1:]))
            assert len(points) == N and stored < given / 10
        else:
            names = set(conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'resource'")).scalars())
            assert {"idx_resource_geom", "uq_resource_source", "resource_uid_key",
                    "ix_resource_categories"} <= names
            assert conn.execute(text(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid IN "
                "('resource'::regclass, 'resource_version'::regclass)")).scalar() == 2
            # The first load wrote the rows in spatial (geohash) order: a page holds
            # neighbours. (Not strictly: a row too big for the current page's rest goes to a
            # new one, and a smaller next row may still fill the old one.)
            hashes = conn.execute(text(
                "SELECT ST_GeoHash(geom, 12) FROM resource ORDER BY ctid")).scalars().all()
            descents = sum(b < a for a, b in zip(hashes, hashes[1:]))
            assert len(hashes) == N and descents < N * 0.05


def test_dry_run_and_duplicate_ids_write_nothing(store, generated):
    recs = generated[:50]
    report = store.bulk_upsert(recs, source="bulk", changed_by="x", dry_run=True)
    assert report.created == 50 and store.count() == 0
    _no_leftovers(store)  # the empty-table path's trigger switch and work tables rolled back
    with pytest.raises(ValueError, match="more than once"):
        store.bulk_upsert([*recs, recs[3]], source="bulk", changed_by="x")
    assert store.count() == 0 and _count(store, ResourceVersion) == 0
    store.bulk_upsert(recs, source="bulk", changed_by="x")  # the connection is still usable
    assert store.count() == 50


def test_pipeline_takes_the_bulk_path_above_the_threshold(store, tmp_path, monkeypatch):
    import importers.pipeline as pipeline
    from bench.generate import generate, write_csv
    from importers import ImportOptions, run_import

    path = tmp_path / "gen.csv"
    write_csv(generate(40, seed=3), path)
    calls = []
    bulk = store.bulk_upsert
    monkeypatch.setattr(store, "bulk_upsert", lambda *a, **k: calls.append(1) or bulk(*a, **k))
    monkeypatch.setattr(pipeline, "BULK_THRESHOLD", 30)
    report = run_import(store, path, ImportOptions(source="gen"))
    assert calls and report.created == 40 and not report.warnings
    monkeypatch.setattr(pipeline, "BULK_THRESHOLD", 100)
    report = run_import(store, path, ImportOptions(source="gen"))
    assert len(calls) == 1 and report.unchanged == 40
    assert store.count() == 40


def test_postgis_spatial_index_is_built_by_buffering_after_a_first_load(request, generated):
    """The first load rebuilds the GiST index from its definition: with the storage parameter
    of migration 0006 (the sorted build packs pages that overlap badly, 4x the page reads).
    PostGIS only: SpatiaLite's R*Tree has no build methods."""
    from mapservice.store import make_store
    from .conftest import _clean

    engine = request.getfixturevalue("_postgis_engine")
    _clean(engine)
    store = make_store(engine)
    store.bulk_upsert(generated[:2_000], source="bench", changed_by="test")
    with engine.connect() as conn:
        options = conn.execute(text(
            "SELECT reloptions FROM pg_class WHERE relname = 'idx_resource_geom'")).scalar_one()
        defined = conn.execute(text(
            "SELECT pg_get_indexdef('idx_resource_geom'::regclass)")).scalar_one()
    assert options == ["buffering=on"] and "buffering" in defined
