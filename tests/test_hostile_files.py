"""Hostile files found by a review (seventh session): each gets a clear error naming where it
is, never a traceback or a record written at a made-up place, and nothing changes."""
from __future__ import annotations

import json

import pytest

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


def test_hsds_service_with_an_unknown_status_is_invalid(store, tmp_path):
    service = {"id": "s1", "name": "Beratung", "status": "deleted",
               "service_at_locations": [{"id": "sal1", "location": {
                   "id": "l1", "name": "Haus", "latitude": 53.55, "longitude": 10.0}}]}
    path = write(tmp_path, "s.json", json.dumps(service))
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
