"""``mapservice export``: GeoJSON and CSV of the published resources, confidential ones
approximate, and the round trip demo -> export -> import into an empty database -> same
resources, on both backends."""
from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import select

from importers import ImportFailed, export
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

    def organisations() -> dict[str, dict]:  # by resource uid, without the org's own uid
        return {uid: {k: v for k, v in org.items() if k != "uid"}
                for uid, org in store.organizations_of(list(_published(store))).items()}

    orgs_before = organisations()
    # the demo's organisations have something to lose: website, e-mail, phone, description
    assert all(org["website"] and org["email"] and org["phone"] and org["description"]
               for org in orgs_before.values()) and len(orgs_before) > 100
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
    # the organisations' details come back too (was: only their names)
    orgs_after = {uid_of[uid]: org for uid, org in organisations().items()}
    assert orgs_after == orgs_before
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


@pytest.mark.parametrize("fmt", ["geojson", "csv", "hsds"])
def test_a_failed_export_leaves_the_previous_file(app, store, tmp_path, fmt, monkeypatch):
    # (was: OUT truncated at once and written page by page: an interrupted export left the
    # head of a new file, and a CSV cut after a row reads as complete)
    load_demo(store)
    (tmp_path / "x").mkdir()
    out = tmp_path / "x" / "out"
    _export(app, fmt, out)
    out.chmod(0o640)
    before = out.read_bytes()
    pages = 0
    real = store.search

    def failing(query):  # the database goes away after the second page
        nonlocal pages
        pages += 1
        if pages > 2:
            raise OSError(28, "No space left on device")
        return real(query)

    monkeypatch.setattr(export, "PAGE_SIZE", 20)
    monkeypatch.setattr(store, "search", failing)
    with pytest.raises(OSError):
        export.export(store, fmt, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no half file left
    monkeypatch.setattr(store, "search", real)
    export.export(store, fmt, out)
    assert (out.stat().st_mode & 0o777) == 0o640  # the previous file's mode is kept


def test_export_to_a_directory_or_a_missing_one_says_so(app, store, tmp_path):
    load_demo(store)
    runner = app.test_cli_runner()
    for out, message in ((tmp_path, "is a directory; name the file to write"),
                         (tmp_path / "nope" / "a.csv", "nope: no such directory")):
        done = runner.invoke(args=["export", "--format", "csv", str(out)])
        assert done.exit_code == 2 and message in done.output, done.output
    unknown = runner.invoke(args=["export", "--format", "csv", str(tmp_path / "a.csv"),
                                  "--source", "dmeo"])
    assert unknown.exit_code == 1 and "no source 'dmeo'; the database has demo" in \
        unknown.output
    assert not (tmp_path / "a.csv").exists()


def test_export_reads_one_snapshot_while_an_import_archives(store, monkeypatch):
    # (was: one read per page: resources archived on an earlier page shifted the later pages,
    # so resources published all along were skipped and archived ones exported)
    load_demo(store)
    everyone = [h.properties["uid"] for h in store.search(SearchQuery(limit=1000)).hits]
    monkeypatch.setattr(export, "PAGE_SIZE", 25)
    hits = export.published(store)
    seen = [next(hits).properties["uid"] for _ in range(30)]  # into the second page
    with store.session() as session:  # meanwhile an import archives the first 20
        first = session.scalars(select(Resource).where(Resource.uid.in_(seen[:20]))).all()
        for res in first:
            res.status = "archived"
        session.commit()
    assert store.count() == len(everyone) - 20
    seen += [hit.properties["uid"] for hit in hits]
    assert seen == everyone  # the state when the export began, each once
    # the next export sees the new state
    assert len(list(export.published(store))) == len(everyone) - 20


@pytest.mark.parametrize("fmt", ["geojson", "csv"])
def test_an_export_imported_into_its_own_database_is_refused(app, store, engine, tmp_path,
                                                              fmt):
    # its ids are the public ids: imported again, every resource was listed twice (and with
    # --archive-missing the originals archived, so every shared link broke)
    from .test_import_csv import db_state

    load_demo(store)
    out = tmp_path / f"demo.{fmt}"
    _export(app, fmt, out)
    before = db_state(store)
    for source in ("demo", "copy"):
        with pytest.raises(ImportFailed) as err:
            run(store, out, source=source, archive_missing=True)
        assert "the file is an export of this database" in err.value.detail
        assert "of the source 'demo'" in err.value.detail
        assert db_state(store) == before
    # into an empty database it imports, and again there it changes nothing
    _clean(engine)
    assert run(store, out, source="copy").created == 194
    assert run(store, out, source="copy").unchanged == 194


@pytest.mark.parametrize("fmt", ["geojson", "csv"])
def test_round_trip_of_long_texts_and_texts_that_start_like_a_formula(app, store, engine,
                                                                       tmp_path, fmt):
    # (was: a cell over 128 KiB broke the CSV import, "check the quotes"; a text that starts
    # with the formula guard itself, "'=Treff'", lost its apostrophe in CSV and GeoJSON)
    texts = {"a": ("'=Treff'", "x" * 200_000), "b": ("'-) Smiley-Club", "=1+1"),
             "c": ("@home e.V.", "'@mention ist kein Befehl")}
    store.upsert([{"source_id": key, "name": name, "description": description,
                   "lat": 53.55, "lon": 10.0 + i / 100}
                  for i, (key, (name, description)) in enumerate(texts.items())],
                 source="texts", changed_by="test")
    out = tmp_path / f"texts.{fmt}"
    _export(app, fmt, out)
    _clean(engine)
    report = run(store, out, source="back")
    assert (report.created, report.invalid) == (3, [])
    back = {(h.properties["name"], h.properties["description"])
            for h in store.search(SearchQuery(limit=10)).hits}
    assert back == set(texts.values())


def test_a_geojson_export_brings_its_sources_licence_and_attribution_back(app, store, engine,
                                                                         tmp_path):
    # (was: the "sources" member was written and ignored: an OSM source's ODbL attribution,
    # which the map must show, was gone after the round trip)
    store.register_source("osm", licence="ODbL-1.0", attribution="© OpenStreetMap contributors")
    store.upsert([{"source_id": "node/1", "name": "Treff", "lat": 53.55, "lon": 10.0}],
                 source="osm", changed_by="test")
    out = tmp_path / "osm.geojson"
    _export(app, "geojson", out)
    _clean(engine)
    run(store, out, source="osm-copy")
    assert store.sources_in_use() == [{"name": "osm-copy", "licence": "ODbL-1.0",
                                       "attribution": "© OpenStreetMap contributors",
                                       "url": None}]
    # given on the command line, they win
    _clean(engine)
    run(store, out, source="osm-copy", licence="CC0-1.0", attribution="mine")
    assert [(s["licence"], s["attribution"]) for s in store.sources_in_use()] == [
        ("CC0-1.0", "mine")]
    # several sources in one file: all their licences and attributions
    store.register_source("demo", licence="CC0-1.0", attribution="Demo")
    load_demo(store)
    both = tmp_path / "both.geojson"
    _export(app, "geojson", both)
    _clean(engine)
    run(store, both, source="all")
    (source,) = store.sources_in_use()
    assert "CC0-1.0" in source["licence"] and "mine" in source["attribution"]
