"""``mapservice export``: GeoJSON and CSV of the published resources, confidential ones
approximate, and the round trip demo -> export -> import into an empty database -> same
resources, on both backends."""
from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import select

from importers import export
from mapservice.demo import load_demo
from mapservice.models import Resource
from mapservice.search import SearchQuery
from mapservice.store.base import approximate

from .conftest import _clean
from .test_import_csv import run

COMPARED = ("name", "description", "translations", "categories", "audiences", "languages",
            "cost", "wheelchair", "opening_hours", "address", "postcode", "stadtteil", "bezirk",
            "phone", "email", "website", "organization", "location_confidential",
            "last_verified")


def _published(store) -> dict[str, dict]:
    """Public view of every published resource, keyed by the id the export writes."""
    hits = store.search(SearchQuery(limit=10_000)).hits
    return {h.properties["uid"]: {**{k: h.properties[k] for k in COMPARED},
                                  "lat": h.lat, "lon": h.lon} for h in hits}


def _export(app, fmt, path, *extra):
    done = app.test_cli_runner().invoke(args=["export", "--format", fmt, str(path), *extra])
    assert done.exit_code == 0, done.output
    return done


@pytest.mark.parametrize("fmt", ["geojson", "csv"])
def test_round_trip_through_an_empty_database(app, store, engine, tmp_path, fmt, monkeypatch):
    monkeypatch.setattr(export, "PAGE_SIZE", 50)  # several pages
    load_demo(store)
    before = _published(store)
    assert len(before) == 194
    out = tmp_path / f"export.{fmt}"
    assert "exported 194 resource(s)" in _export(app, fmt, out).output

    _clean(engine)
    assert store.count() == 0
    report = run(store, out, source="roundtrip")
    assert (report.created, report.invalid) == (194, [])
    with store.session() as session:
        uid_of = dict(session.execute(select(Resource.uid, Resource.source_id)).all())
    after = {uid_of[uid]: fields for uid, fields in _published(store).items()}
    assert after.keys() == before.keys()
    for key, was in before.items():
        now = after[key]
        assert (now["lat"], now["lon"]) == pytest.approx((was["lat"], was["lon"]), abs=1e-6)
        assert {k: now[k] for k in COMPARED} == {k: was[k] for k in COMPARED}, key
    again = run(store, out, source="roundtrip")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 194)


def test_confidential_resources_are_exported_approximately_without_address(app, store,
                                                                         tmp_path):
    load_demo(store)
    with store.session() as session:
        secret = [(r.uid, r.exact_lat, r.exact_lon) for r in session.scalars(
            select(Resource).where(Resource.location_confidential.is_(True)))]
    assert secret
    _export(app, "geojson", tmp_path / "a.geojson")
    _export(app, "csv", tmp_path / "a.csv")
    features = {f["id"]: f for f in json.loads((tmp_path / "a.geojson").read_text())["features"]}
    with (tmp_path / "a.csv").open(encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    for uid, lat, lon in secret:
        assert features[uid]["geometry"]["coordinates"] == list(approximate(lon, lat))
        assert features[uid]["properties"]["address"] is None
        assert (float(rows[uid]["lon"]), float(rows[uid]["lat"])) == approximate(lon, lat)
        assert rows[uid]["address"] == ""
    text = (tmp_path / "a.geojson").read_text() + (tmp_path / "a.csv").read_text()
    for _uid, lat, lon in secret:
        assert repr(lat) not in text and repr(lon) not in text


def test_export_has_only_published_resources_of_the_source(app, store, tmp_path):
    load_demo(store)
    store.register_source("other", licence="CC0-1.0")
    store.upsert([{"source_id": "x", "name": "Other", "lat": 53.55, "lon": 10.0},
                  {"source_id": "y", "name": "Gone", "lat": 53.55, "lon": 10.0,
                   "status": "archived"}], source="other", changed_by="test")
    _export(app, "geojson", tmp_path / "all.geojson")
    doc = json.loads((tmp_path / "all.geojson").read_text())
    assert len(doc["features"]) == 195
    assert {s["name"] for s in doc["sources"]} == {"demo", "other"}
    _export(app, "csv", tmp_path / "other.csv", "--source", "other")
    with (tmp_path / "other.csv").open(encoding="utf-8") as fh:
        assert [r["name"] for r in csv.DictReader(fh)] == ["Other"]


def test_hsds_export_goes_to_the_hsds_module(app, store, tmp_path):
    import json

    load_demo(store)
    store.upsert([{"source_id": "x", "name": "Other", "lat": 53.55, "lon": 10.0}],
                 source="other", changed_by="test")
    _export(app, "hsds", tmp_path / "a.json")
    _export(app, "hsds", tmp_path / "b.json", "--source", "other")
    everything = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    only_other = json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))
    assert "Other" in json.dumps(only_other, ensure_ascii=False)
    assert "Demo: " not in json.dumps(only_other, ensure_ascii=False)
    assert len(json.dumps(everything)) > len(json.dumps(only_other))
