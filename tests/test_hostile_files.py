"""Hostile files found by a review (seventh session): each gets a clear error naming where it
is, never a traceback or a record written at a made-up place, and nothing changes."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from importers import ImportFailed, ImportOptions, run_import
from importers.csv_reader import MappingFileError

from .test_import_csv import HAMBURG, db_state, write


def _run(store, path, **kw):
    return run_import(store, path, ImportOptions(source="hostile", region_bbox=HAMBURG, **kw))


# (lat="1e400" is not among them: libosmium reads it as 0, a valid position far outside the
# region, which the import reports as a warning)
@pytest.mark.parametrize("lat", ["abc", "nan", "91"])
def test_osm_node_with_a_broken_position(store, tmp_path, lat):
    path = write(tmp_path, "a.osm", f"""<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6"><node id="1" lat="{lat}" lon="10.0" version="1">
<tag k="amenity" v="community_centre"/><tag k="name" v="Treff"/></node></osm>""")
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path)
    problem = err.value.problems[0]
    assert str(path) == problem.where.file
    assert ("cannot read the OSM file" in problem.message
            or "no valid location" in problem.message), problem
    assert db_state(store) == before


def test_geojson_nested_too_deeply(store, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    path = write(tmp_path, "deep.geojson", '{"type": "FeatureCollection", "features": '
                 f'[{{"type": "Feature", "properties": {{"name": {deep}}}, "geometry": null}}]}}')
    before = db_state(store)
    with pytest.raises(ImportFailed, match="nested too deeply|not valid JSON|cannot read"):
        _run(store, path, format="vector")
    assert db_state(store) == before


@pytest.mark.parametrize("coordinates", ["NaN", "Infinity", "-Infinity"])
def test_geojson_point_that_is_not_a_number_is_not_placed_at_null_island(store, tmp_path,
                                                                          coordinates):
    path = write(tmp_path, "nan.geojson", '{"type": "FeatureCollection", "features": ['
                 '{"type": "Feature", "properties": {"name": "Treff", "plz": "20095"}, '
                 f'"geometry": {{"type": "Point", "coordinates": [{coordinates}, 53.5]}}}}]}}')
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="vector")
    assert err.value.problems[0].where.item == 1
    assert db_state(store) == before


@pytest.mark.parametrize("doc", ["columns: 5", "values: [1, 2]", "categories: yes"])
def test_csv_mapping_of_the_wrong_shape(tmp_path, store, doc):
    mapping = write(tmp_path, "m.yaml", doc + "\n")
    csv = write(tmp_path, "a.csv", "name,lat,lon\nTreff,53.5,10.0\n")
    with pytest.raises(MappingFileError, match="expected a mapping"):
        _run(store, csv, mapping=mapping)


def test_osm_mapping_of_the_wrong_shape(tmp_path, store):
    mapping = write(tmp_path, "m.yaml", "resources: 5\n")
    path = write(tmp_path, "a.osm", """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6"><node id="1" lat="53.5" lon="10.0" version="1">
<tag k="amenity" v="community_centre"/><tag k="name" v="Treff"/></node></osm>""")
    with pytest.raises(Exception) as err:
        _run(store, path, mapping=mapping)
    assert "resources" in str(err.value) and "expected a list" in str(err.value)
    assert not isinstance(err.value, TypeError)


def _service(**fields):
    """An HSDS 3.0 service at one place in Hamburg, with ``fields`` added."""
    return {"id": "s1", "name": "Beratung", **fields, "service_at_locations": [
        {"id": "sal1", "location": {"id": "l1", "name": "Haus", "latitude": 53.55,
                                    "longitude": 10.0}}]}


def test_hsds_service_with_an_unknown_status_is_invalid(store, tmp_path):
    path = write(tmp_path, "s.json", json.dumps(_service(status="deleted")))
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="hsds")
    assert any("unknown status 'deleted'" in p.message for p in err.value.problems)
    assert db_state(store) == before


def test_hsds_datapackage_cannot_follow_a_symbolic_link_out_of_its_directory(store, tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    outside = write(tmp_path, "secret.csv", "id,name\n1,secret\n")
    (package / "services.csv").symlink_to(outside)
    write(package, "datapackage.json", json.dumps({"resources": [
        {"name": "services", "path": "services.csv"}]}))
    before = db_state(store)
    with pytest.raises(ImportFailed, match="leads outside the package"):
        _run(store, package / "datapackage.json", format="hsds")
    assert db_state(store) == before


# ---- what used to be passed over without a word (eighth session) -----------------------------
def test_geojson_entries_that_are_not_features_are_named_not_dropped(store, tmp_path):
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [10.0, 53.55]}}
    entries = [{**feature, "properties": {"name": "Erster Treff"}},
               {"type": "Point", "coordinates": [10.0, 53.55]}, "Treff", None,
               {**feature, "type": "feature", "properties": {"name": "klein"}},
               {**feature, "properties": {"name": "Zweiter Treff"}}]
    path = write(tmp_path, "mixed.geojson", json.dumps(
        {"type": "FeatureCollection", "features": entries}))
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="vector")
    assert {(p.where.item, p.message.split(";")[0]) for p in err.value.problems} == {
        (2, "not a GeoJSON Feature but an object of type 'Point'"),
        (3, "not a GeoJSON Feature but a string"), (4, "not a GeoJSON Feature but null"),
        (5, "not a GeoJSON Feature but an object of type 'feature'")}
    assert db_state(store) == before
    # --skip-invalid: the two features, each under its own position in the file
    report = _run(store, path, format="vector", skip_invalid=True)
    assert (report.read, report.created, len(report.invalid)) == (6, 2, 4)
    assert {w.where.item for w in report.warnings} <= {1, 6}


def test_geojson_text_with_a_nul_is_named_not_cut(store, tmp_path):
    # GDAL reads "Treff\u0000Nord" as "Treff": the rest of the name would be lost unseen.
    point = {"type": "Point", "coordinates": [10.0, 53.55]}
    features = [{"type": "Feature", "geometry": point, "properties": props} for props in (
        {"name": "Treff\u0000Nord", "plz": "20095"}, {"name": "Zweiter Treff"},
        {"name": "Dritter Treff", "phone\u0000": "040 123"},
        {"name": "Vierter Treff", "tags": ["a\u0000b"]})]
    path = write(tmp_path, "nul.geojson", json.dumps(
        {"type": "FeatureCollection", "features": features}))
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="vector")
    found = {(p.where.item, p.where.field, p.message.split(";")[0])
             for p in err.value.problems}
    assert found == {(1, "name", "contains the control character U+0000 at position 6"),
                     (3, "phone\x00", "the property's name contains the control character "
                                       "U+0000 at position 6")}
    assert db_state(store) == before
    # --skip-invalid: the other two, and nothing cut short
    report = _run(store, path, format="vector", skip_invalid=True)
    assert (report.read, report.created, len(report.invalid)) == (4, 2, 2)
    with store.engine.connect() as conn:
        assert conn.execute(text("select name from resource where source = 'hostile' "
                                 "order by name")).scalars().all() == ["Vierter Treff",
                                                                       "Zweiter Treff"]


def test_geojson_text_field_given_as_true_object_or_list_is_named(store, tmp_path):
    # GDAL would read them as the names "true", '{ "de": "Treff" }' and '[ "Treff" ]'
    point = {"type": "Point", "coordinates": [10.0, 53.55]}
    features = [{"type": "Feature", "geometry": point, "properties": props} for props in (
        {"name": True}, {"name": {"de": "Treff"}}, {"name": "Treff", "Telefon": ["040 1"]},
        {"name": "Treff 1860", "plz": 20095, "wheelchair": True, "tags": {"a": 1}},
        {"name": 1860})]
    path = write(tmp_path, "typed.geojson", json.dumps(
        {"type": "FeatureCollection", "features": features}))
    mapping = write(tmp_path, "m.yaml", "columns:\n  phone: Telefon\n")
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="vector", mapping=mapping)
    assert {(p.where.item, p.where.field, p.message) for p in err.value.problems} == {
        (1, "name", "is true, not text"), (2, "name", "is an object, not text"),
        (3, "Telefon", "is a list, not text (phone)")}
    assert db_state(store) == before
    # numbers are text enough (a postcode, a name like 1860); unmapped properties are not read
    report = _run(store, path, format="vector", mapping=mapping, skip_invalid=True)
    assert (report.created, len(report.invalid)) == (2, 3)


def test_overpass_elements_that_are_not_elements_are_refused(store, tmp_path):
    node = {"type": "node", "id": 1, "lat": 53.55, "lon": 10.0,
            "tags": {"amenity": "community_centre", "name": "Treff"}}
    path = write(tmp_path, "broken.json", json.dumps({"version": 0.6, "elements": [
        node, 5, {**node, "id": 2, "tags": ["amenity", "community_centre"]}]}))
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="overpass")
    assert [(p.where.item, p.where.field, p.message) for p in err.value.problems] == [
        (2, None, "not an OSM element but a number"),
        (3, "tags", "'tags' must be an object of key/value pairs, not a list")]
    assert db_state(store) == before


@pytest.mark.parametrize("elements, reason", [
    ([], "has no elements"),
    ([{"type": "node", "id": 1, "lat": 53.5, "lon": 10.0, "tags": {"amenity": "bench"}}],
     "no element of the file matches the tag mapping (1 tagged elements")])
def test_overpass_result_without_resources_is_not_an_empty_success(store, tmp_path, elements,
                                                                   reason):
    # (with --archive-missing, an empty result would archive the whole source)
    path = write(tmp_path, "empty.json", json.dumps({"version": 0.6, "elements": elements}))
    before = db_state(store)
    with pytest.raises(ImportFailed, match=reason.replace("(", r"\(")):
        _run(store, path, format="overpass", archive_missing=True)
    assert db_state(store) == before


def test_osm_file_without_resources_is_not_an_empty_success(store, tmp_path):
    path = write(tmp_path, "bench.osm", """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6"><node id="1" lat="53.5" lon="10.0" version="1">
<tag k="amenity" v="bench"/></node></osm>""")
    with pytest.raises(ImportFailed, match="no element of the file matches the tag mapping"):
        _run(store, path)


@pytest.mark.parametrize("field, value, message", [
    ("schedules", {"byday": "MO"}, "'schedules' must be a list of objects, not an object"),
    ("phones", ["040 123456"], "entry 1 of 'phones' is a string, not an object"),
    ("languages", "de", "'languages' must be a list of objects, not a string"),
    # texts given as true, an object or a list: dropped or stored as "True" before
    ("name", True, "'name' must be text, not true/false"),
    ("description", {"de": "Beratung"}, "'description' must be text, not an object"),
    ("email", ["a@example.org"], "'email' must be text, not a list"),
    ("phones", [{"number": "040 1"}, {"number": {"n": 1}}],
     "'phones[2].number' must be text, not an object")])
def test_hsds_lists_of_the_wrong_shape_make_the_record_invalid(store, tmp_path, field, value,
                                                                message):
    path = write(tmp_path, "s.json", json.dumps(_service(status="active", **{field: value})))
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="hsds")
    (problem,) = err.value.problems
    assert problem.message == message and problem.where.field.endswith(field), problem
    assert db_state(store) == before


def test_csv_coordinate_with_an_underscore_is_not_a_number(store, tmp_path):
    # Python's float() reads "5_3.55" as 53.55
    path = write(tmp_path, "u.csv", "name,lat,lon\nTreff,5_3.55,10.0\n")
    with pytest.raises(ImportFailed) as err:
        _run(store, path)
    (problem,) = err.value.problems
    assert problem.where.item == 1 and "'5_3.55' is not a number" in problem.message


def test_unknown_postcode_is_named_as_unknown_not_as_missing(store, tmp_path):
    path = write(tmp_path, "p.csv", "name,plz\nTreff,99999\n")
    with pytest.raises(ImportFailed) as err:
        _run(store, path)
    (problem,) = err.value.problems
    assert problem.message == ("no coordinates, and the gazetteer does not know its "
                               "postcode '99999'"), problem


@pytest.mark.parametrize("sal, field, message", [
    ({"id": "sal1", "location": "Haus"}, "location", "'location' must be an object, not a string"),
])
def test_hsds_location_of_the_wrong_shape_is_named(store, tmp_path, sal, field, message):
    service = {"id": "s1", "name": "Beratung", "service_at_locations": [sal]}
    path = write(tmp_path, "s.json", json.dumps(service))
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="hsds")
    assert any(p.message == message and p.where.field.endswith(field)
               for p in err.value.problems), err.value.problems


@pytest.mark.parametrize("value, message", [
    ({"id": "sal1"}, "must be a list of objects, not an object"),
    (["sal1"], "must be a list of objects, not a list holding a string")])
def test_hsds_service_at_locations_of_the_wrong_shape_are_refused(store, tmp_path, value,
                                                                   message):
    org = {"id": "o1", "name": "Träger", "services": [
        {"id": "s1", "name": "Beratung", "service_at_locations": value}]}
    path = write(tmp_path, "o.json", json.dumps(org))
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="hsds")
    (problem,) = err.value.problems
    assert problem.message == message
    assert problem.where.field == "$.services[0].service_at_locations"
    assert db_state(store) == before


def test_geojson_whole_number_too_large_for_a_float_is_named_not_rounded(store, tmp_path):
    # GDAL reads a whole number beyond int64 (and every number of a property that also holds
    # fractions) as a float: the id 12345678901234567890 would be stored as 1.2345678901234567e+19
    point = {"type": "Point", "coordinates": [10.0, 53.55]}
    body = ('{"type": "FeatureCollection", "features": ['
            + ", ".join('{"type": "Feature", "geometry": %s, "properties": %s}'
                        % (json.dumps(point), props) for props in (
                            '{"id": 12345678901234567890, "name": "Treff"}',
                            '{"id": 123456789012345678901234567, "name": "Zweiter Treff"}',
                            '{"id": 9007199254740993, "name": "Dritter Treff", "x": 1}',
                            '{"id": 0.5, "name": "Vierter Treff"}',
                            '{"id": 7, "name": "Fünfter Treff", "unused": 9007199254740993}'))
            + "]}")
    path = write(tmp_path, "big.geojson", body)
    mapping = write(tmp_path, "m.yaml", "columns:\n  source_id: id\n")
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        _run(store, path, format="vector", mapping=mapping)
    assert {(p.where.item, p.where.field, p.message.split(",")[0]) for p in
            err.value.problems} == {
        (1, "id", "is the whole number 12345678901234567890"),
        (2, "id", "is the whole number 123456789012345678901234567"),
        (3, "id", "is the whole number 9007199254740993")}
    assert 'write it as text: "9007199254740993"' in err.value.problems[2].message
    assert db_state(store) == before
    # as text, the id comes through exactly (and GDAL now reads the whole column as text, so
    # 9007199254740993 is kept too; the third id is still a number too large)
    fixed = body.replace("12345678901234567890,", '"12345678901234567890",')
    path.write_text(fixed)
    report = _run(store, path, format="vector", mapping=mapping, skip_invalid=True)
    assert (report.created, len(report.invalid)) == (4, 1)
    with store.engine.connect() as conn:
        assert {"12345678901234567890", "9007199254740993"} <= set(conn.execute(text(
            "select source_id from resource where source = 'hostile'")).scalars().all())
