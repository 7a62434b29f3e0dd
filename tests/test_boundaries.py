"""District boundaries: migration 0003, ``import-boundaries`` on the official Hamburg polygons,
point-in-polygon on both paths (one SQL UPDATE; the import pipeline) giving the same answer,
Neuwerk, confidential resources, and bad boundary files."""
from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text

from importers import ImportFailed
from importers.boundaries import load_boundaries, read_boundaries
from mapservice import migrate
from mapservice.models import District, Resource
from mapservice.store.base import approximate

from .conftest import shared_data
from .test_import_csv import db_state, run, stored, write

RATHAUS = (53.5503, 9.9927)  # Hamburg-Altstadt, Bezirk Hamburg-Mitte
NEUWERK = (53.9215, 8.504)  # the island: in the Stadtteil layer, not in the Bezirk layer
LUEBECK = (53.8655, 10.6866)  # outside Hamburg
# A confidential shelter in St. Pauli whose public grid-cell centre lies in Neustadt.
SHELTER = (53.5595, 9.98)


def stadtteile():
    return shared_data("hamburg_admin_boundaries", "hamburg-district-regions.geojson")


def bezirke():
    return shared_data("hamburg_admin_boundaries", "hamburg-districts.geojson")


def record(sid: str, point: tuple[float, float], **kw) -> dict:
    return {"source_id": sid, "name": f"Treff {sid}", "lat": point[0], "lon": point[1],
            "categories": ["community_centre"], **kw}


def districts_of(store) -> dict[str, tuple]:
    with store.session() as session:
        return {r.source_id: (r.stadtteil, r.bezirk, r.version) for r in session.scalars(
            select(Resource))}


def test_migration_0003_up_and_down(backend, engine):
    migrate.downgrade(engine, "0002")
    assert "district" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert "district" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        if backend == "postgis":
            index = conn.execute(text("select indexdef from pg_indexes where indexname = "
                                      "'idx_district_geom'")).scalar()
            assert "gist" in index
        else:
            assert conn.execute(text(
                "select spatial_index_enabled from geometry_columns where "
                "f_table_name = 'district'")).scalar() == 1


def test_import_boundaries_assigns_every_resource(app, store):
    store.upsert([record("rathaus", RATHAUS, stadtteil="Altona", bezirk="Altona"),
                  record("neuwerk", NEUWERK),
                  record("luebeck", LUEBECK, stadtteil="Lübeck-Innenstadt"),
                  record("shelter", SHELTER, location_confidential=True)],
                 source="test", changed_by="test")
    with store.session() as session:
        stamp = {r.source_id: r.updated_at for r in session.scalars(select(Resource))}
    runner = app.test_cli_runner()
    done = runner.invoke(args=["import-boundaries", str(stadtteile())])
    assert done.exit_code == 0, done.output
    assert "104 stadtteil polygon(s)" in done.output
    assert "changed on 3 resource(s)" in done.output
    done = runner.invoke(args=["import-boundaries", str(bezirke()), "--level", "auto"])
    assert done.exit_code == 0 and "7 bezirk polygon(s)" in done.output, done.output
    assert districts_of(store) == {
        "rathaus": ("Hamburg-Altstadt", "Hamburg-Mitte", 1),
        "neuwerk": ("Neuwerk", "Hamburg-Mitte", 1),
        "luebeck": ("Lübeck-Innenstadt", None, 1),  # outside every polygon: kept
        "shelter": ("St. Pauli", "Hamburg-Mitte", 1),  # its exact point, not the public one
    }
    with store.session() as session:
        moved = {r.source_id for r in session.scalars(select(Resource))
                 if r.updated_at != stamp[r.source_id]}
        versions = session.scalar(text("select count(*) from resource_version"))
    assert moved == {"rathaus", "neuwerk", "shelter"}
    assert versions == 4  # derived values write no version
    with store.engine.connect() as conn:
        levels = dict(conn.execute(select(District.level, text("count(*)"))
                                   .group_by(District.level)).all())
    assert levels == {"stadtteil": 104, "bezirk": 7}


def test_the_shelter_point_is_really_a_border_case():
    import json

    import shapely
    from shapely.geometry import shape

    features = json.loads(stadtteile().read_text(encoding="utf-8"))["features"]

    def stadtteil(lat: float, lon: float) -> str:
        return next(f["properties"]["name"] for f in features
                    if shape(f["geometry"]).contains(shapely.Point(lon, lat)))

    lon, lat = approximate(SHELTER[1], SHELTER[0])
    assert (stadtteil(*SHELTER), stadtteil(lat, lon)) == ("St. Pauli", "Neustadt")
    assert stadtteil(*NEUWERK) == "Neuwerk"


def test_later_imports_are_placed_and_reimports_change_nothing(store, tmp_path):
    load_boundaries(store, stadtteile())
    path = write(tmp_path, "a.csv", "id,name,lat,lon,stadtteil,vertraulich\n"
                 f"1,Rathaustreff,{RATHAUS[0]},{RATHAUS[1]},,\n"
                 f"2,Inseltreff,{NEUWERK[0]},{NEUWERK[1]},Altona,\n"
                 f"3,Schutzwohnung,{SHELTER[0]},{SHELTER[1]},,ja\n"
                 f"4,Lübecker Treff,{LUEBECK[0]},{LUEBECK[1]},,\n")
    report = run(store, path, region_bbox=None)
    assert districts_of(store) == {"1": ("Hamburg-Altstadt", "Hamburg-Mitte", 1),
                                   "2": ("Neuwerk", "Hamburg-Mitte", 1),
                                   "3": ("St. Pauli", "Hamburg-Mitte", 1),
                                   "4": (None, None, 1)}
    warned = {(p.where.item, p.where.field): p.message for p in report.warnings}
    assert "'Altona'" in warned[(2, "stadtteil")] and "'Neuwerk'" in warned[(2, "stadtteil")]
    assert "outside every district polygon" in warned[(4, "lat/lon")]
    again = run(store, path, region_bbox=None)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)


def test_sql_update_and_import_pipeline_agree(store):
    """Resources imported before the boundaries get their districts from the SQL UPDATE;
    re-importing the same file then derives them in Python: not one may differ."""
    path = shared_data("hamburg_osm_pois_2026_02", "hamburg-poi-community-centers-2026-02.csv")
    first = run(store, path, skip_invalid=True)
    load_boundaries(store, stadtteile())
    load_boundaries(store, bezirke())
    report = run(store, path, skip_invalid=True)
    assert (report.created, report.updated, report.unchanged) == (0, 0, first.created)
    placed = [r for r in stored(store).values() if r.stadtteil]
    assert len(placed) == first.created - 21  # 24 rows outside Hamburg, 3 of them unnamed
    outside = [p for p in report.warnings if "outside every district" in p.message]
    assert len(outside) == 21


def test_level_can_be_forced():
    rows, _warnings = read_boundaries(stadtteile(), "bezirk")
    assert list(rows) == ["bezirk"] and len(rows["bezirk"]) == 104


def test_bad_boundary_files_are_refused_and_nothing_changes(store, tmp_path):
    load_boundaries(store, bezirke())
    store.upsert([record("rathaus", RATHAUS)], source="test", changed_by="test")
    before = (db_state(store), districts_of(store))
    with store.engine.connect() as conn:
        count = conn.execute(text("select count(*) from district")).scalar()
    points = write(tmp_path, "points.geojson", '{"type": "FeatureCollection", "features": ['
                   '{"type": "Feature", "properties": {"name": "X"}, "geometry": '
                   '{"type": "Point", "coordinates": [10, 53.5]}}]}')
    with pytest.raises(ImportFailed, match="a Point, not a polygon") as err:
        load_boundaries(store, points, "bezirk")
    assert err.value.problems[0].where.item == 1
    unnamed = write(tmp_path, "unnamed.geojson", '{"type": "FeatureCollection", "features": ['
                    '{"type": "Feature", "properties": {"name": null}, "geometry": '
                    '{"type": "Polygon", "coordinates": [[[10, 53], [11, 53], [11, 54], '
                    '[10, 53]]]}}]}')
    with pytest.raises(ImportFailed, match="no name"):
        load_boundaries(store, unnamed, "bezirk")
    long_name = write(tmp_path, "long.geojson", '{"type": "FeatureCollection", "features": ['
                      '{"type": "Feature", "properties": {"name": "' + "Nord" * 30 + '"}, '
                      '"geometry": {"type": "Polygon", "coordinates": [[[10, 53], [11, 53], '
                      '[11, 54], [10, 53]]]}}]}')
    with pytest.raises(ImportFailed, match=r"longer than 100 characters \(120\)") as err:
        load_boundaries(store, long_name, "bezirk")
    assert (err.value.problems[0].where.item, err.value.problems[0].where.field) == (1, "name")
    nan = write(tmp_path, "nan.geojson", '{"type": "FeatureCollection", "features": ['
                '{"type": "Feature", "properties": {"name": "Nord"}, "geometry": {"type": '
                '"Polygon", "coordinates": [[[10, 53], [NaN, 53], [11, 54], [10, 53]]]}}]}')
    with pytest.raises(ImportFailed, match=r"coordinates that are not numbers \(NaN") as err:
        load_boundaries(store, nan, "bezirk")
    assert err.value.problems[0].where.item == 1
    broken = write(tmp_path, "broken.geojson", "{not json")
    with pytest.raises(ImportFailed, match="not valid JSON"):
        load_boundaries(store, broken)
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from district")).scalar() == count
    assert (db_state(store), districts_of(store)) == before


def test_a_failure_while_assigning_keeps_the_old_polygons(store, monkeypatch):
    """New polygons and the resources' districts are one transaction: a failure after the
    polygons were replaced leaves the old ones and every resource's district as they were."""
    load_boundaries(store, bezirke())
    store.upsert([record("rathaus", RATHAUS)], source="test", changed_by="test")
    before = (db_state(store), districts_of(store))

    def levels():
        with store.engine.connect() as conn:
            return conn.execute(text("select level, count(*) from district group by level "
                                     "order by level")).all()

    polygons = levels()
    assign = type(store).assign_districts

    def assign_then_fail(self, *, conn=None):
        assert assign(self, conn=conn) >= 0
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(store), "assign_districts", assign_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        load_boundaries(store, stadtteile())  # would add the Stadtteil level
    assert levels() == polygons == [("bezirk", 7)]
    assert (db_state(store), districts_of(store)) == before


def test_cli_reports_a_bad_boundary_file(app, tmp_path):
    broken = write(tmp_path, "broken.geojson", "")
    done = app.test_cli_runner().invoke(args=["import-boundaries", str(broken)])
    assert done.exit_code == 2 and "empty" in done.output


def test_polygons_outside_the_region_are_refused(store, tmp_path):
    """A file whose CRS is declared wrongly puts every polygon somewhere else: refused, with
    the feature and where it lies, and the districts stay as they were."""
    load_boundaries(store, bezirke())
    before = districts_of(store)
    elsewhere = write(tmp_path, "elsewhere.geojson", '{"type": "FeatureCollection", '
                      '"features": [{"type": "Feature", "properties": {"name": "Mitte"}, '
                      '"geometry": {"type": "Polygon", "coordinates": [[[0.1, 4.5], [0.2, 4.5],'
                      ' [0.2, 4.6], [0.1, 4.5]]]}}]}')
    region = (8.40, 53.39, 10.33, 53.97)
    with pytest.raises(ImportFailed, match="lies outside the service region") as err:
        load_boundaries(store, elsewhere, "bezirk", region=region)
    assert err.value.problems[0].where.item == 1
    assert districts_of(store) == before
    assert load_boundaries(store, bezirke(), region=region).loaded == {"bezirk": 7}
