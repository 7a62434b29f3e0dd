"""The stored Feature of each resource (``resource.feature``, migration 0005) on both backends:
every write path leaves it equal to what the public columns say, a writer that does not know
about it cannot leave it stale, and the API answers the same with and without it."""
from __future__ import annotations

import datetime as dt

import orjson
import pytest
from sqlalchemy import insert, text

from bench.generate import records
from mapservice.geojson import feature_collection, feature_text, stored_feature, unpack_feature
from mapservice.models import STATUSES, District
from mapservice.search import SearchQuery
from mapservice.store.base import Hit

ORG = {"name": "Verein Nachbarschaft e.V.", "source_id": "org-1"}
RECORDS = [
    {"source_id": "a", "name": "Jugendtreff \"Hafen\"", "lat": 53.5461, "lon": 9.9661,
     "description": "Offener Treff\nmit Tischtennis", "organization": ORG,
     "categories": ["youth_centre"], "audiences": ["youth"], "languages": ["de", "ar"],
     "translations": {"en": {"name": "Youth club"}, "ar": {"name": "نادي الشباب"}},
     "opening_hours": "Mo-Fr 14:00-20:00", "address": "Hafenstraße 1", "postcode": "20359",
     "phone": "+49 40 1234567", "website": "https://example.org/", "cost": "free",
     "wheelchair": "yes", "last_verified": "2026-10-01"},
    {"source_id": "b", "name": "Beratung (vertraulich)", "lat": 53.5702, "lon": 10.0301,
     "location_confidential": True, "address": "geheim 3", "organization": ORG,
     "categories": ["counselling"]},
    {"source_id": "c", "name": "Sprachcafé Ümit", "lat": 53.5801, "lon": 9.9402,
     "categories": ["language_cafe"], "languages": ["tr", "de"]},
]


def _stored(engine) -> dict[int, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, feature FROM resource")).all())


def assert_features_current(store) -> dict[int, dict]:
    """Every resource has its stored Feature, and it equals the one built afresh from the
    stored columns (all reset, then :meth:`Store.fill_features`)."""
    before = _stored(store.engine)
    assert before and all(before.values()), [i for i, f in before.items() if not f]
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE resource SET feature = NULL"))
    assert store.fill_features() == len(before)
    after = _stored(store.engine)
    parsed = {i: orjson.loads(f) for i, f in before.items()}
    assert parsed == {i: orjson.loads(f) for i, f in after.items()}
    return parsed


def _by_name(parsed: dict[int, dict]) -> dict[str, dict]:
    return {f["properties"]["name"]: f for f in parsed.values()}


def test_orm_upsert_stores_current_features(store):
    store.upsert(RECORDS, source="test", changed_by="t")
    features = _by_name(assert_features_current(store))
    youth = features['Jugendtreff "Hafen"']
    assert youth["geometry"] == {"type": "Point", "coordinates": [9.9661, 53.5461]}
    props = youth["properties"]
    assert props["id"] == youth["id"] and props["organization"] == ORG["name"]
    assert props["translations"]["ar"]["name"] == "نادي الشباب"
    assert props["last_verified"] == "2026-10-01" and props["updated_at"].endswith("Z")
    secret = features["Beratung (vertraulich)"]
    assert secret["properties"]["address"] is None
    assert secret["properties"]["location_precision"] == "approximate"
    assert secret["geometry"]["coordinates"] != [10.0301, 53.5702]


def test_every_write_path_keeps_them_current(store):
    store.upsert(RECORDS, source="test", changed_by="t")
    # a change through the ORM path, and the organisation renamed by another record
    store.upsert([dict(RECORDS[2], name="Sprachcafé Ümit II"),
                  dict(RECORDS[0], organization=dict(ORG, name="Nachbarschaft Hafen e.V."))],
                 source="test", changed_by="t")
    features = _by_name(assert_features_current(store))
    assert "Sprachcafé Ümit II" in features
    # both resources of the organisation carry its new name (a trigger reset the other one)
    assert {f["properties"]["organization"] for f in features.values()
            if f["properties"]["name"] != "Sprachcafé Ümit II"} == {"Nachbarschaft Hafen e.V."}
    # archived: still current (not public, but an archived row may be published again)
    assert store.archive_missing("test", ["a", "b"], changed_by="t") == 1
    assert_features_current(store)
    # districts assigned by point-in-polygon
    with store.engine.begin() as conn:
        conn.execute(insert(District.__table__).values(
            level="stadtteil", code="x", name="Testviertel", bezirk="Testbezirk",
            geom="SRID=4326;MULTIPOLYGON(((9.9 53.5, 10.0 53.5, 10.0 53.6, 9.9 53.6, "
                 "9.9 53.5)))"))
    assert store.assign_districts() >= 1
    features = _by_name(assert_features_current(store))
    assert features['Jugendtreff "Hafen"']["properties"]["stadtteil"] == "Testviertel"


def test_a_writer_that_does_not_know_cannot_leave_a_stale_feature(store):
    store.upsert(RECORDS, source="test", changed_by="t")
    with store.engine.begin() as conn:  # e.g. a moderator's SQL, or a tool of a later version
        conn.execute(text("UPDATE resource SET name = 'Umbenannt' WHERE source_id = 'c'"))
        conn.execute(text("UPDATE organization SET name = 'Neuer Träger'"))
    stale = {i for i, f in _stored(store.engine).items() if f is None}
    assert len(stale) == 3  # the renamed resource and both of the renamed organisation
    # reads build what is missing from the columns: never the old text
    hits = store.search(SearchQuery(limit=10)).hits
    assert {h.properties["name"] for h in hits} >= {"Umbenannt"}
    assert {orjson.loads(feature_text(h))["properties"]["organization"] for h in hits} == {
        "Neuer Träger", None}
    near = store.search(SearchQuery(near=(53.57, 10.03), limit=1)).hits[0]
    assert near.properties["organization"] == "Neuer Träger" and near.distance_m < 1500
    assert store.get(near.properties["uid"]).properties["organization"] == "Neuer Träger"
    # a reader never writes: the next write (or init-db) stores them
    assert {i for i, f in _stored(store.engine).items() if f is None} == stale
    assert store.fill_features() == 3
    assert_features_current(store)


@pytest.mark.parametrize("into", ["empty", "filled"])
def test_bulk_paths_store_current_features(store, into):
    recs = list(records(600, seed=5))
    if into == "filled":  # not the first load: the insert path for a table with rows
        store.upsert(RECORDS, source="other", changed_by="t")
    store.bulk_upsert(recs, source="bench", changed_by="t")
    first = assert_features_current(store)
    changed = [dict(r, name=r["name"] + " (neu)") if i % 7 == 0 else r
               for i, r in enumerate(recs)]
    # and new rows in a source that has rows: stored after the merge
    added = [dict(r, source_id=f"{r['source_id']}-added", name=r["name"] + " (dazu)")
             for r in recs[:30]]
    report = store.bulk_upsert(changed + added, source="bench", changed_by="t")
    assert report.updated == len(range(0, 600, 7)) and report.created == 30
    again = assert_features_current(store)
    renamed = {f["properties"]["name"] for f in again.values()} - {
        f["properties"]["name"] for f in first.values()}
    assert {n for n in renamed if n.endswith(" (neu)")} and all(
        n.endswith((" (neu)", " (dazu)")) for n in renamed)
    assert sum(n.endswith(" (dazu)") for n in renamed) == len({r["name"] for r in added})
    confidential = [f for f in again.values() if f["properties"]["location_confidential"]]
    assert confidential and all(f["properties"]["address"] is None
                                and f["properties"]["location_precision"] == "approximate"
                                for f in confidential)


def test_api_answers_the_same_with_and_without_stored_features(store, client):
    store.upsert(RECORDS, source="test", changed_by="t")
    store.bulk_upsert(records(300, seed=3), source="bench", changed_by="t")
    urls = ["/api/v1/resources?limit=1000", "/api/v1/resources?near=53.56,9.98&limit=50",
            "/api/v1/resources?bbox=9.9,53.5,10.1,53.6&limit=1000&f=json",
            "/api/v1/resources?near=53.56,9.98&radius=3000&f=csv",
            "/ogc/collections/resources/items?limit=100",
            "/hsds/services?per_page=50"]

    def answers() -> list:
        out = []
        for url in urls:
            r = client.get(url)
            assert r.status_code == 200, (url, r.data[:300])
            body = r.data.decode()
            if "f=csv" in url:
                out.append(body)
                continue
            doc = orjson.loads(body)
            doc.pop("timeStamp", None)
            out.append(doc)
        return out

    stored = answers()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE resource SET feature = NULL"))
    assert stored == answers()
    first = stored[1]["features"]
    assert [f["properties"]["distance_m"] for f in first] == sorted(
        f["properties"]["distance_m"] for f in first)


def test_feature_texts_round_trip():
    props = {"uid": "u-1", "slug": "x", "name": 'A "quoted" name\t', "translations": {},
             "categories": ["a"], "last_verified": dt.date(2026, 1, 2),
             "updated_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
             "location_confidential": False, "organization": None}
    text_ = stored_feature(props, 9.5, 53.25)
    assert unpack_feature(text_) == (props, 9.5, 53.25)
    hit = Hit(None, 9.5, 53.25, 12.5, text_)
    doc = orjson.loads(feature_collection([hit, Hit(props, 9.5, 53.25)], numberReturned=2))
    assert doc["numberReturned"] == 2 and len(doc["features"]) == 2
    assert doc["features"][0]["properties"]["distance_m"] == 12.5
    assert "distance_m" not in doc["features"][1]["properties"]
    assert orjson.loads(feature_collection([])) == {"type": "FeatureCollection", "features": []}
    assert set(STATUSES) >= {"published", "archived"}
