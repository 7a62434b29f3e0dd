"""GIS vector import through pyogrio: the real Hamburg Kita GML (EPSG:25832), GeoJSON,
GeoPackage, zipped Shapefiles with and without .prj, points inside lines and polygons, and bad
files that must leave the database unchanged."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pytest
import shapely
from pyproj import Transformer

from importers import ImportFailed
from importers.pipeline import detect_format
from importers.vector import VectorReader

from .conftest import shared_data
from .test_import_csv import db_state, options, run, stored, write

KITA_XY = (567838.978, 5946099.058)  # kita.gml, EPSG:25832 (see its PROVENANCE.md)


def _kita_lonlat() -> tuple[float, float]:
    return Transformer.from_crs("EPSG:25832", "EPSG:4326", always_xy=True).transform(*KITA_XY)


def geojson(tmp_path: Path, features: list[tuple[dict | None, dict[str, Any]]],
            name: str = "a.geojson") -> Path:
    return write(tmp_path, name, json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": geom, "properties": props} for geom, props in features]}))


def write_vector(path: Path, geoms: list, props: dict[str, list], crs: str | None,
                 driver: str) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "crs was not provided": on purpose
        pyogrio.raw.write(str(path), np.array([shapely.to_wkb(g) for g in geoms], dtype=object),
                          [np.array(v, dtype=object) for v in props.values()], list(props),
                          geometry_type=geoms[0].geom_type, driver=driver, crs=crs)
    return path


def zipped_shapefile(tmp_path: Path, crs: str | None) -> Path:
    folder = tmp_path / "shp"
    folder.mkdir()
    write_vector(folder / "kitas.shp", [shapely.Point(*KITA_XY)],
                 {"Name": ["KiTa Flügelkinder"], "Nummer": ["1011696"]}, crs, "ESRI Shapefile")
    archive = tmp_path / "kitas.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in folder.iterdir():
            zf.write(file, file.name)
    return archive


def read(path: Path, **kw: Any) -> list:
    return list(VectorReader().read(path, options(**kw)))


# ---- the real Kita GML ------------------------------------------------------------------------
def test_kita_gml_is_reprojected_and_mapped(store):
    path = shared_data("hamburg_kita_wfs_schema_sample", "kita.gml")
    assert detect_format(path) == "vector"
    report = run(store, path, source="kita", skip_invalid=False)
    assert (report.read, report.created, report.invalid) == (1, 1, [])
    res = stored(store, "kita")["1011696"]
    assert res.name == "KiTa Flügelkinder"
    assert (res.address, res.postcode) == ("Immenbarg 6", "22417")
    assert (res.stadtteil, res.bezirk) == ("Langenhorn", "Hamburg-Nord")
    assert res.phone == "+49 40 83983003"  # a local number: Hamburg's area code added
    assert (res.email, res.website) == ("info@fluegelkinder.de", "http://www.fluegelkinder.de/")
    hit = store.get(res.uid)
    assert hit.properties["organization"] == "Kita Flügelkinder Christin Beckmann"
    lon, lat = _kita_lonlat()
    assert (hit.lon, hit.lat) == pytest.approx((lon, lat), abs=1e-6)
    assert 53.6 < hit.lat < 53.7 and 10.0 < hit.lon < 10.1  # Langenhorn, not the sea
    again = run(store, path, source="kita")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)


# ---- formats and CRS --------------------------------------------------------------------------
def test_geopackage_in_utm_is_reprojected(tmp_path):
    path = write_vector(tmp_path / "a.gpkg", [shapely.Point(*KITA_XY)],
                        {"name": ["Kita"], "id": ["k1"]}, "EPSG:25832", "GPKG")
    (cand,) = read(path)
    assert (cand.record["lon"], cand.record["lat"]) == pytest.approx(_kita_lonlat(), abs=1e-9)
    assert cand.record["source_id"] == "k1"


def test_zipped_shapefile_with_prj(tmp_path):
    path = zipped_shapefile(tmp_path, "EPSG:25832")
    assert detect_format(path) == "vector"
    (cand,) = read(path)
    assert cand.problems == []
    assert (cand.record["lon"], cand.record["lat"]) == pytest.approx(_kita_lonlat(), abs=1e-9)


def test_shapefile_without_prj_in_utm_is_refused_until_crs_is_given(store, tmp_path):
    path = zipped_shapefile(tmp_path, None)
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        run(store, path)
    (problem,) = err.value.problems
    assert problem.where.file == str(path) and "--crs EPSG:25832" in problem.message
    assert db_state(store) == before
    report = run(store, path, crs="EPSG:25832")
    assert report.created == 1
    (res,) = stored(store).values()
    assert store.get(res.uid).lat == pytest.approx(_kita_lonlat()[1], abs=1e-6)


def test_crs_option_overrides_a_declared_crs(tmp_path):
    # Coordinates really in EPSG:25832, the file (wrongly) declaring EPSG:25833.
    path = write_vector(tmp_path / "a.gpkg", [shapely.Point(*KITA_XY)], {"name": ["Kita"]},
                        "EPSG:25833", "GPKG")
    (wrong,) = read(path)
    (right,) = read(path, crs="EPSG:25832")
    assert (right.record["lon"], right.record["lat"]) == pytest.approx(_kita_lonlat(), abs=1e-9)
    assert abs(wrong.record["lon"] - right.record["lon"]) > 1


def test_lines_and_polygons_become_a_point_inside(tmp_path):
    # A U shape: its centroid lies in the gap, outside the polygon.
    u_shape = shapely.Polygon([(10.0, 53.5), (10.03, 53.5), (10.03, 53.53), (10.02, 53.53),
                               (10.02, 53.51), (10.01, 53.51), (10.01, 53.53), (10.0, 53.53)])
    assert not u_shape.contains(u_shape.centroid)
    line = shapely.LineString([(9.9, 53.55), (9.95, 53.56), (9.96, 53.6)])
    path = geojson(tmp_path, [(shapely.geometry.mapping(u_shape), {"name": "U"}),
                              (shapely.geometry.mapping(line), {"name": "Line"})])
    poly_cand, line_cand = read(path)
    point = shapely.Point(poly_cand.record["lon"], poly_cand.record["lat"])
    assert u_shape.contains(point)
    point = shapely.Point(line_cand.record["lon"], line_cand.record["lat"])
    assert line.distance(point) < 1e-9


def test_geojson_attributes_use_the_column_mapping(tmp_path):
    path = geojson(tmp_path, [({"type": "Point", "coordinates": [9.99, 53.55]},
                               {"Bezeichnung": "Sprachcafé", "Kategorie": ["Sprachcafé"],
                                "Sprachen": ["Deutsch", "uk"], "kostenlos": True,
                                "Kosten": "kostenlos", "oeffnungszeiten": "Mo 10:00-12:00"})])
    (cand,) = read(path)
    rec = cand.record
    assert (rec["name"], rec["categories"], rec["languages"], rec["cost"]) == \
        ("Sprachcafé", ["language_cafe"], ["de", "uk"], "free")
    assert rec["opening_hours"] == "Mo 10:00-12:00"
    assert any("kostenlos" in w.message for w in cand.warnings)  # the unused attribute


def test_geojson_feature_ids_are_the_source_ids(store, tmp_path):
    # GDAL takes a numeric Feature id as the feature's number and hands on no attribute: the
    # records would get content ids, and a renamed place would come back as a new resource
    point = {"type": "Point", "coordinates": [9.99, 53.55]}

    def collection(names: tuple[str, str], ids: tuple[Any, Any]) -> str:
        return json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": id_, "geometry": point, "properties": {"name": name}}
            for name, id_ in zip(names, ids)]})

    path = write(tmp_path, "ids.geojson", collection(("Treff", "Café"), (5, 12345678901)))
    assert run(store, path, format="vector").created == 2
    assert set(stored(store)) == {"5", "12345678901"}
    path.write_text(collection(("Treff Nord", "Café"), (5, 12345678901)))
    report = run(store, path, format="vector")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    assert stored(store)["5"].name == "Treff Nord"
    # text ids were read before; an "id" property wins over the Feature's id
    path.write_text(collection(("Treff Nord", "Café"), ("n5", "n6")))
    assert run(store, path, source="text").created == 2
    assert set(stored(store, "text")) == {"n5", "n6"}
    features = json.loads(collection(("A", "B"), (1, 2)))
    for number, feature in enumerate(features["features"]):
        feature["properties"]["id"] = f"p{number}"
    path.write_text(json.dumps(features))
    assert run(store, path, source="prop").created == 2
    assert set(stored(store, "prop")) == {"p0", "p1"}


def test_json_sniffing_claims_only_geojson(tmp_path):
    reader = VectorReader()
    assert reader.sniff(geojson(tmp_path, [], "a.json"))
    overpass = write(tmp_path, "o.json", json.dumps({"version": 0.6, "elements": []}))
    assert not reader.sniff(overpass)
    # a name "Feature" in an HSDS file is no GeoJSON (was: claimed, then refused by GDAL)
    hsds = write(tmp_path, "h.json", json.dumps({"contents": [
        {"id": "s1", "name": "Feature", "organization": {"name": "FeatureCollection"},
         "service_at_locations": []}], "total_items": 1}))
    assert not reader.sniff(hsds)
    assert detect_format(hsds) == "hsds"


def test_geojson_text_that_looks_like_a_time_stays_as_written(tmp_path):
    # GDAL typed a property whose every value looks like a time as Time: "10:00" -> "10:00:00"
    path = geojson(tmp_path, [({"type": "Point", "coordinates": [9.99, 53.55]},
                               {"name": "Treff", "description": "10:00",
                                "opening_hours": "Mo 10:00-12:00"}),
                              ({"type": "Point", "coordinates": [9.98, 53.55]},
                               {"name": "2024-05-01", "description": "12:30"})])
    first, second = read(path)
    assert (first.record["description"], second.record["description"],
            second.record["name"]) == ("10:00", "12:30", "2024-05-01")


# ---- bad files: clear errors, nothing written ---------------------------------------------------
def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, tuple[int | None, str | None, str]]]:
    point = {"type": "Point", "coordinates": [10.0, 53.5]}
    return {
        "not-json": (write(tmp_path, "a.geojson", '{"type": "FeatureCollection", "features": ['
                           '{"type": "Feature", "geometry": null, "properties": {"name": '),
                     (None, None, "not valid JSON")),
        "empty": (write(tmp_path, "b.geojson", ""), (None, None, "empty")),
        "latitude-100": (geojson(tmp_path, [(point, {"name": "A"}),
                                            ({"type": "Point", "coordinates": [10.0, 100.0]},
                                             {"name": "B"})], "c.geojson"),
                         (2, "lat", "outside -90..90")),
        "bad-hours": (geojson(tmp_path, [(point, {"name": "A", "opening_hours": "immer"})],
                              "d.geojson"), (1, "opening_hours", "opening_hours")),
        "no-features": (geojson(tmp_path, [], "e.geojson"), (None, None, "no features")),
    }


@pytest.mark.parametrize("case", ["not-json", "empty", "latitude-100", "bad-hours",
                                  "no-features"])
def test_bad_vector_file_is_refused_and_nothing_changes(store, tmp_path, case):
    run(store, geojson(tmp_path, [({"type": "Point", "coordinates": [10.0, 53.5]},
                                   {"id": "kept", "name": "Kept"})], "good.geojson"))
    path, (item, field, message) = _bad_files(tmp_path)[case]
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        run(store, path, format="vector")
    problem = err.value.problems[0]
    assert message in problem.message, problem
    assert (problem.where.file, problem.where.item, problem.where.field) == \
        (str(path), item, field)
    if item is not None:
        assert problem.where.kind == "feature"
    assert db_state(store) == before


def test_feature_without_geometry_is_placed_or_reported(tmp_path):
    path = geojson(tmp_path, [(None, {"name": "A", "lat": 53.5, "lon": 10.0}),
                              (None, {"name": "B"})])
    first, second = read(path)
    assert (first.record["lat"], first.record["lon"]) == (53.5, 10.0)
    assert second.record.get("lat") is None
    assert any(w.message == "no geometry" for w in second.warnings)
