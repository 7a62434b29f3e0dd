"""OpenStreetMap import: .osm/.osm.gz/.osm.pbf (real north-Bayreuth extract) and Overpass JSON
(crafted from small literal dicts with realistic Hamburg tags)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import osmium
import pytest
import yaml
from shapely.geometry import Point, Polygon
from sqlalchemy import func, select

from importers import ImportFailed, ImportOptions, detect_format, run_import, validate
from importers.osm import MAPPING_FILE, OsmFileReader, OverpassReader
from importers.pipeline import Candidate, reader_for
from mapservice.models import Resource, ResourceVersion, Source

from .conftest import shared_data

HAMBURG = (8.40, 53.39, 10.33, 53.97)
BAYREUTH = "osm_xml_pbf_north_bayreuth"

# The north-Bayreuth extract holds none of the default resource tags (rural, 2014), so the
# parity and storage tests map what it has: nodes and building ways (kindergartens, townhalls,
# churches — "Gemeindeverwaltung Harsdorf" is mapped as a node AND a building), a complete
# multipolygon relation (a quarry) and municipality boundaries cut off at the extract's edge.
EXTRA_RULES = [
    {"when": {"amenity": ["kindergarten", "townhall", "place_of_worship"]},
     "categories": ["community_centre"]},
    {"when": {"landuse": "quarry"}, "categories": ["sport_leisure"]},
    {"when": {"boundary": "administrative", "admin_level": "8"},
     "categories": ["community_centre"]},
]
# A route relation whose members all lie outside the extract: it cannot be placed.
ROUTE_RULE = {"when": {"type": "route", "tourism": "yes"}, "categories": ["culture"]}


def _mapping(tmp_path: Path, rules: list[dict], exclude: list | None = None,
             **policies: str) -> Path:
    raw = yaml.safe_load(MAPPING_FILE.read_text(encoding="utf-8"))
    raw["resources"] += rules
    if exclude is not None:
        raw["exclude"] = exclude
    raw.setdefault("policies", {}).update(policies)
    path = tmp_path / f"mapping-{len(list(tmp_path.glob('mapping-*')))}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _read(path: Path, fmt: str, mapping: Path | None = None) -> list[Candidate]:
    return list(reader_for(fmt).read(path, ImportOptions(source="t", mapping=mapping)))


def _comparable(cands: list[Candidate]) -> list[tuple[Any, ...]]:
    """Everything a candidate says, without the file name (which differs by design)."""
    def problems(items):
        return [(p.where.item, p.where.ref, p.where.field, p.message) for p in items]
    return [(c.where.item, c.where.ref, c.record, problems(c.problems), problems(c.warnings))
            for c in cands]


def _stored(store, source: str) -> dict[str, dict[str, Any]]:
    with store.session() as session:
        return {r.source_id: store.snapshot(r) for r in session.scalars(
            select(Resource).where(Resource.source == source))}


def _versions(store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(ResourceVersion))


# ---- .osm.gz vs .osm.pbf ----------------------------------------------------------------------
def test_xml_and_pbf_give_identical_candidates(tmp_path):
    mapping = _mapping(tmp_path, EXTRA_RULES + [ROUTE_RULE], exclude=[])
    xml = _read(shared_data(BAYREUTH, "north-bayreuth.osm.gz"), "osm", mapping)
    pbf = _read(shared_data(BAYREUTH, "north-bayreuth.osm.pbf"), "osm", mapping)
    assert _comparable(xml) == _comparable(pbf)
    kinds = {c.record["source_id"].split("/")[0] for c in pbf}
    assert kinds == {"node", "way", "relation"}
    assert len(pbf) >= 25
    by_ref = {c.record["source_id"]: c for c in pbf}
    # the multipolygon quarry and a complete boundary are areas; the route cannot be placed
    assert by_ref["relation/1669599"].record["name"] == "Sandgrube"
    assert not by_ref["relation/1669599"].problems
    route = by_ref["relation/56919"]
    assert route.record["lat"] is None
    assert "none of its node or way members have coordinates" in route.problems[0].message
    assert route.problems[0].where.ref == "relation/56919"
    # a boundary cut off by the extract is still placed, with a warning naming it
    cut = by_ref["relation/1022774"]
    assert cut.record["lat"] is not None and not cut.problems
    assert any("not in the file" in w.message for w in cut.warnings)


def test_area_becomes_a_point_inside_it(tmp_path):
    path = shared_data(BAYREUTH, "north-bayreuth.osm.pbf")
    mapping = _mapping(tmp_path, EXTRA_RULES)
    cands = {c.record["source_id"]: c for c in _read(path, "osm", mapping)}
    wanted = {200157596: "Evangelische Kindertagesstätte Harsdorf",
              200070326: "Gemeindeverwaltung Harsdorf"}
    rings = {w.id: [(n.lon, n.lat) for n in w.nodes] for w in osmium.FileProcessor(str(path))
             .with_locations().with_filter(osmium.filter.IdFilter(list(wanted)))
             if w.is_way()}
    for way_id, name in wanted.items():
        rec = cands[f"way/{way_id}"].record
        assert rec["name"] == name
        assert Polygon(rings[way_id]).contains(Point(rec["lon"], rec["lat"]))


def test_node_and_building_of_the_same_place_are_both_kept_and_reported(tmp_path):
    mapping = _mapping(tmp_path, EXTRA_RULES)
    cands = {c.record["source_id"]: c
             for c in _read(shared_data(BAYREUTH, "north-bayreuth.osm.pbf"), "osm", mapping)}
    node, way = cands["node/2100576898"], cands["way/200070326"]
    assert node.record["name"] == way.record["name"] == "Gemeindeverwaltung Harsdorf"
    assert any("possible duplicate" in w.message and "node/2100576898" in w.message
               for w in node.warnings + way.warnings)


def test_pbf_import_stores_and_reimport_changes_nothing(store, tmp_path):
    """Both backends; .osm.gz yields the same candidates (above), so it stores the same."""
    mapping = _mapping(tmp_path, EXTRA_RULES, exclude=[])

    def run(name: str):
        return run_import(store, shared_data(BAYREUTH, name), ImportOptions(
            source="bayreuth", mapping=mapping, skip_invalid=True, region_bbox=HAMBURG))

    first = run("north-bayreuth.osm.pbf")
    assert first.created >= 15 and first.updated == 0
    assert first.created + len({p.where.ref for p in first.invalid}) == first.read
    # unnamed matches are reported with their element, not silently dropped or crashed on
    assert first.invalid and all(p.where.ref and p.where.kind == "element"
                                 for p in first.invalid)
    assert any(p.where.field == "name" for p in first.invalid)
    # Bavaria lies outside the service region: warnings, not errors
    assert any("outside the service region" in w.message for w in first.warnings)
    stored = _stored(store, "bayreuth")
    versions = _versions(store)

    again = run("north-bayreuth.osm.pbf")
    assert (again.created, again.updated, again.unchanged) == (0, 0, first.created)
    assert _versions(store) == versions
    assert _stored(store, "bayreuth") == stored
    read = {c.record["source_id"]: c.record for c in _read(
        shared_data(BAYREUTH, "north-bayreuth.osm.pbf"), "osm", mapping)}
    assert len(stored) == first.created
    for sid, rec in stored.items():
        assert {k: rec[k] for k in ("name", "categories", "lat", "lon")} == \
            {k: read[sid][k] for k in ("name", "categories", "lat", "lon")}
    with store.session() as session:
        source = session.scalar(select(Source).where(Source.name == "bayreuth"))
        assert source.licence == "ODbL-1.0"
        assert "OpenStreetMap" in source.attribution


def test_unreadable_osm_file_fails_with_its_name(store, tmp_path):
    path = tmp_path / "broken.osm.pbf"
    path.write_bytes(b"\x00\x00\x00\x0dnot a pbf at all" * 20)
    with pytest.raises(ImportFailed) as failed:
        run_import(store, path, ImportOptions(source="broken"))
    assert failed.value.problems[0].where.file == str(path)
    assert "cannot read the OSM file" in failed.value.problems[0].message
    assert store.count() == 0


def test_bad_mapping_file_is_reported_before_reading(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("resources:\n  - when: {amenity: library}\n    categories: [libary]\n")
    with pytest.raises(ImportFailed) as failed:
        _read(shared_data(BAYREUTH, "north-bayreuth.osm.pbf"), "osm", bad)
    problem = failed.value.problems[0]
    assert problem.where.file == str(bad) and "libary" in problem.message


# ---- Overpass JSON -----------------------------------------------------------------------------
HEADER = {"version": 0.6, "generator": "Overpass API 0.7.62.1 084b4234",
          "osm3s": {"timestamp_osm_base": "2026-02-01T10:00:00Z",
                    "copyright": "The data included in this document is from "
                                 "www.openstreetmap.org. The data is made available under ODbL."}}
# A U-shaped building: the centre of its bounding box lies in the open courtyard.
U_SHAPE = [(10.0700, 53.5500), (10.0710, 53.5500), (10.0710, 53.5510), (10.0708, 53.5510),
           (10.0708, 53.5502), (10.0702, 53.5502), (10.0702, 53.5510), (10.0700, 53.5510),
           (10.0700, 53.5500)]


def _geom(coords):
    return [{"lat": lat, "lon": lon} for lon, lat in coords]


def _square(lon, lat, half):
    return [(lon - half, lat - half), (lon + half, lat - half), (lon + half, lat + half),
            (lon - half, lat + half), (lon - half, lat - half)]


def _write(tmp_path: Path, elements: list[dict], name: str = "overpass.json", **extra) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({**HEADER, **extra, "elements": elements}, ensure_ascii=False),
                    encoding="utf-8")
    return path


YOUTH_CENTRE = {
    "type": "node", "id": 2318211501, "lat": 53.6098, "lon": 10.0569,
    "tags": {"amenity": "community_centre", "community_centre": "youth_centre",
             "name": "Haus der Jugend Steilshoop", "name:en": "Steilshoop Youth House",
             "name:ar": "بيت الشباب شتايلسهوب", "name:ja": "ユースハウス",
             "opening_hours": "Mo-Fr 14:00-20:00", "wheelchair": "designated", "fee": "no",
             "language:de": "yes", "language:tr": "yes", "language:ar": "yes",
             "language:tlh": "yes", "contact:website": "example.org/hdj-steilshoop",
             "contact:phone": "+49 40 66969301;+49 40 66969302",
             "addr:street": "Gropiusring", "addr:housenumber": "43",
             "addr:postcode": "22309", "operator": "Bezirksamt Wandsbek",
             "check_date": "2025-11-03"}}
BENCH = {"type": "node", "id": 11, "lat": 53.6, "lon": 10.05, "tags": {"amenity": "bench"}}


def test_overpass_out_center_geom_and_body(tmp_path):
    hole = _square(10.0800, 53.5600, 0.0002)
    elements = [
        YOUTH_CENTRE, BENCH,
        # out center, no geometry: the centre is all there is
        {"type": "way", "id": 40001, "center": {"lat": 53.5837, "lon": 10.0447},
         "tags": {"amenity": "library", "name": "Bücherhalle Barmbek", "fee": "yes"}},
        # out geom with center: the bbox centre lies in the courtyard, so it is not used
        {"type": "way", "id": 40002, "center": {"lat": 53.5506, "lon": 10.0705},
         "bounds": {"minlat": 53.55, "minlon": 10.07, "maxlat": 53.551, "maxlon": 10.071},
         "geometry": _geom(U_SHAPE),
         "tags": {"amenity": "community_centre", "name": "Stadtteilhaus Horner Freiheit",
                  "opening_hours": "Mo-Fr 9-17", "community_centre:for": "senior;child;xyz"}},
        # out geom on a multipolygon: outer ring with an inner hole; centre in the hole
        {"type": "relation", "id": 50001, "center": {"lat": 53.5600, "lon": 10.0800},
         "members": [{"type": "way", "ref": 60001, "role": "outer",
                      "geometry": _geom(_square(10.0800, 53.5600, 0.001))},
                     {"type": "way", "ref": 60002, "role": "inner", "geometry": _geom(hole)}],
         "tags": {"type": "multipolygon", "amenity": "social_facility",
                  "social_facility": "outreach", "social_facility:for": "refugee;women",
                  "name": "Beratungszentrum Wilhelmsburg", "wheelchair": "partial"}},
        # out body + >; : way by node ids, the nodes follow untagged
        {"type": "way", "id": 40003, "nodes": [1, 2, 3, 4, 1],
         "tags": {"amenity": "arts_centre", "name": "Kulturhaus Eidelstedt"}},
        {"type": "relation", "id": 50002,
         "members": [{"type": "way", "ref": 40004, "role": "outer"}],
         "tags": {"type": "multipolygon", "healthcare": "counselling",
                  "healthcare:counselling": "addiction",
                  "name": "Suchtberatung Altona"}},
        {"type": "way", "id": 40004, "nodes": [5, 6, 7, 5]},
        # a women's shelter: imported, but its point must never be published
        {"type": "node", "id": 2318211599, "lat": 53.57, "lon": 10.02,
         "tags": {"amenity": "social_facility", "social_facility": "shelter",
                  "social_facility:for": "women", "name": "Frauenhaus"}},
    ] + [{"type": "node", "id": i, "lat": lat, "lon": lon} for i, (lon, lat) in {
        1: (9.9400, 53.6000), 2: (9.9410, 53.6000), 3: (9.9410, 53.6006),
        4: (9.9400, 53.6006), 5: (9.9350, 53.5500), 6: (9.9360, 53.5500),
        7: (9.9355, 53.5506)}.items()]
    path = _write(tmp_path, elements)
    assert detect_format(path) == "overpass"
    cands = {c.record["source_id"]: c for c in _read(path, "overpass")}
    assert set(cands) == {"node/2318211501", "way/40001", "way/40002", "relation/50001",
                          "way/40003", "relation/50002", "node/2318211599"}

    youth = cands["node/2318211501"]
    rec = youth.record
    assert youth.where.item == 1 and youth.where.kind == "element"
    assert rec["categories"] == ["youth_centre", "community_centre"]
    assert rec["audiences"] == ["youth"]
    assert rec["translations"] == {"en": {"name": "Steilshoop Youth House"},
                                   "ar": {"name": "بيت الشباب شتايلسهوب"}}
    assert sorted(rec["languages"]) == ["ar", "de", "tr"]
    assert (rec["wheelchair"], rec["cost"]) == ("yes", "free")
    assert (rec["website"], rec["phone"]) == ("example.org/hdj-steilshoop", "+49 40 66969301")
    assert (rec["address"], rec["postcode"]) == ("Gropiusring 43", "22309")
    assert rec["organization"] == {"name": "Bezirksamt Wandsbek"}
    assert rec["opening_hours"] == "Mo-Fr 14:00-20:00"
    assert str(rec["last_verified"]) == "2025-11-03"
    assert (rec["lat"], rec["lon"]) == (53.6098, 10.0569)
    assert [w.where.field for w in youth.warnings] == ["language:tlh"]

    assert (cands["way/40001"].record["lat"], cands["way/40001"].record["lon"]) == \
        (53.5837, 10.0447)
    assert cands["way/40001"].record["cost"] == "paid"

    horn = cands["way/40002"]
    point = Point(horn.record["lon"], horn.record["lat"])
    assert Polygon(U_SHAPE).contains(point)
    assert horn.record["opening_hours"] is None  # "9-17" is no valid syntax: dropped, warned
    hours = [w for w in horn.warnings if w.where.field == "opening_hours"]
    assert hours and "element 4 (way/40002)" in str(hours[0])
    assert "'Mo-Fr 9-17'" in hours[0].message
    assert "seniors" in horn.record["categories"]
    assert set(horn.record["audiences"]) == {"seniors", "children"}
    assert any(w.where.field == "community_centre:for" and "xyz" in w.message
               for w in horn.warnings)

    outreach = cands["relation/50001"]
    point = Point(outreach.record["lon"], outreach.record["lat"])
    assert Polygon(_square(10.08, 53.56, 0.001), [hole]).contains(point)
    assert outreach.record["categories"][0] == "counselling"
    assert {"newcomer_support", "women"} <= set(outreach.record["categories"])
    assert set(outreach.record["audiences"]) == {"newcomers", "women"}
    assert outreach.record.get("wheelchair") is None  # "partial" is not in the table
    assert any(w.where.field == "wheelchair" for w in outreach.warnings)

    eidelstedt = cands["way/40003"]
    assert Polygon(_square(9.9405, 53.6003, 0.0005)).contains(
        Point(eidelstedt.record["lon"], eidelstedt.record["lat"]))
    assert eidelstedt.record["categories"] == ["culture"]
    altona = cands["relation/50002"]
    assert Polygon([(9.9350, 53.5500), (9.9360, 53.5500), (9.9355, 53.5506)]).contains(
        Point(altona.record["lon"], altona.record["lat"]))
    assert altona.record["categories"] == ["counselling", "health"]
    assert all(not c.problems for c in cands.values())

    shelter = cands["node/2318211599"].record
    assert shelter["location_confidential"] is True
    assert shelter["categories"][0] == "women"


def test_overpass_import_stores_and_is_idempotent(store, tmp_path):
    path = _write(tmp_path, [YOUTH_CENTRE, BENCH])
    first = run_import(store, path, ImportOptions(source="overpass-hh", region_bbox=HAMBURG))
    assert (first.read, first.created) == (1, 1)
    assert not first.warnings[1:] and "language:tlh" in str(first.warnings[0])
    stored = _stored(store, "overpass-hh")["node/2318211501"]
    assert stored["website"] == "https://example.org/hdj-steilshoop"
    assert stored["categories"] == ["youth_centre", "community_centre"]
    assert stored["translations"]["en"] == {"name": "Steilshoop Youth House"}
    versions = _versions(store)
    again = run_import(store, path, ImportOptions(source="overpass-hh", region_bbox=HAMBURG))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    assert _versions(store) == versions


def test_overpass_bad_elements_abort_with_locations_and_write_nothing(store, tmp_path):
    elements = [
        YOUTH_CENTRE,
        {"type": "node", "id": 71, "tags": {"amenity": "library", "name": "Ohne Ort"}},
        {"type": "way", "id": 72, "nodes": [900, 901, 902, 900],
         "tags": {"amenity": "community_centre", "name": "Bürgerhaus ohne Knoten"}},
        {"type": "relation", "id": 73, "members": [{"type": "way", "ref": 999, "role": "outer"}],
         "tags": {"type": "multipolygon", "amenity": "library", "name": "Leere Relation"}},
        BENCH,
    ]
    path = _write(tmp_path, elements)
    with pytest.raises(ImportFailed) as failed:
        run_import(store, path, ImportOptions(source="bad", region_bbox=HAMBURG))
    problems = {p.where.ref: p for p in failed.value.problems}
    assert set(problems) == {"node/71", "way/72", "relation/73"}
    assert problems["node/71"].where.item == 2 and "no coordinates" in str(problems["node/71"])
    assert "900, 901, 902" in problems["way/72"].message
    assert "element 3 (way/72)" in str(problems["way/72"])
    assert store.count(statuses=("published", "draft", "pending", "archived")) == 0
    # --skip-invalid imports the rest and lists the skipped
    report = run_import(store, path, ImportOptions(source="bad", skip_invalid=True))
    assert report.created == 1 and len(report.invalid) == 3


@pytest.mark.parametrize("content, message", [
    ("this is {not json", "not JSON"),
    (json.dumps({**HEADER, "remark": "x"}), "no 'elements' list"),
    (json.dumps({**HEADER, "elements": [YOUTH_CENTRE],
                 "remark": "runtime error: Query timed out in \"query\" at line 3"}),
     "Overpass reported an error"),
])
def test_overpass_unreadable_files(tmp_path, content, message):
    path = tmp_path / "q.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFailed) as failed:
        _read(path, "overpass")
    assert failed.value.problems[0].where.file == str(path)
    assert message in failed.value.problems[0].message


def test_invalid_opening_hours_can_be_made_an_error_by_the_mapping(tmp_path):
    node = {**YOUTH_CENTRE, "tags": {**YOUTH_CENTRE["tags"], "opening_hours": "Mo-Fr 9-17"}}
    path = _write(tmp_path, [node])
    [lenient] = _read(path, "overpass")
    assert lenient.record["opening_hours"] is None
    [strict] = _read(path, "overpass", _mapping(tmp_path, [], invalid_opening_hours="reject"))
    assert strict.record["opening_hours"] == "Mo-Fr 9-17"
    assert not any(w.where.field == "opening_hours" for w in strict.warnings)
    _, errors, _ = validate.record(strict.record, strict.where, HAMBURG)
    assert [e.where.field for e in errors] == ["opening_hours"]
    assert "element 1 (node/2318211501), field 'opening_hours'" in str(errors[0])


# ---- format detection ------------------------------------------------------------------------
def test_detect_format(tmp_path):
    for name in ("a.osm", "b.osm.gz", "c.osm.pbf", "D.OSM.PBF"):
        assert detect_format(tmp_path / name) == "osm"
    overpass = _write(tmp_path, [YOUTH_CENTRE], name="export")  # no suffix: by content
    assert detect_format(overpass) == "overpass"
    sniff = OverpassReader().sniff
    geojson = tmp_path / "x.json"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [10, 53.5]},
         "properties": {"elements": []}}]}))
    assert not sniff(geojson)
    hsds = tmp_path / "hsds.json"
    hsds.write_text(json.dumps({"id": "1", "name": "Org", "services": [],
                                "elements": "none", "generator": "x"}))
    assert not sniff(hsds)
    assert not OsmFileReader().sniff(geojson)
    # past the sniffed head (64 KB) only the start of the file decides
    benches = [dict(BENCH, id=i) for i in range(1, 2000)]
    big = _write(tmp_path, benches + [YOUTH_CENTRE], name="big.json")
    assert big.stat().st_size > 100_000 and sniff(big)
    big_geojson = tmp_path / "big.geojson"
    big_geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [10, 53.5]},
         "properties": {"elements": [], "generator": "Overpass API"}}] * 2000}))
    assert big_geojson.stat().st_size > 100_000 and not sniff(big_geojson)


def test_cli_imports_overpass_json_and_reports_bad_elements(app, tmp_path):
    runner = app.test_cli_runner()
    good = _write(tmp_path, [YOUTH_CENTRE, BENCH], name="hamburg-youth.json")
    done = runner.invoke(args=["import", str(good)])  # format detected from the content
    assert done.exit_code == 0, done.output
    assert "created 1" in done.output and "language:tlh" in done.output
    bad = _write(tmp_path, [{"type": "way", "id": 72, "nodes": [900, 901],
                             "tags": {"amenity": "library", "name": "Ohne Knoten"}}],
                 name="bad.json")
    failed = runner.invoke(args=["import", str(bad), "--format", "overpass"])
    assert failed.exit_code == 2
    assert "element 1 (way/72)" in failed.output and "900, 901" in failed.output
