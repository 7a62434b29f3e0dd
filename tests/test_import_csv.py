"""CSV import: encodings, delimiters, column and category mapping, the real Hamburg OSM POI files,
crafted bad files (nothing written), and re-imports on both backends."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from importers import ImportFailed, ImportOptions, run_import
from importers.csv_reader import CsvReader, content_id, detect_delimiter, load_mapping
from importers.pipeline import gazetteer_geocoder
from mapservice.models import Resource
from mapservice.store import Store

from .conftest import shared_data

HAMBURG = (8.40, 53.39, 10.33, 53.97)
POI_FILES = ("childcare", "clinics", "community-centers", "doctors", "kindergartens",
             "libraries", "places-of-worship", "schools")
HEADER = "id,name,street,zip_code,lat,lon,category,opening_hours\n"
ROWS = ("1,Haus der Jugend Kirchdorf,Wilhelmsburger Str. 1,21109,53.4931,10.0095,Jugendzentrum,"
        "Mo-Fr 14:00-20:00\n"
        "2,Bücherhalle Harburg,Eddelbüttelstraße 47a,21073,53.4601,9.9834,Bücherhalle,\n"
        "3,Stadtteilzentrum Rathaus,Rathausmarkt 1,20095,53.5503,9.9927,community centre,\n")


# ---- helpers shared by the import tests ------------------------------------------------------
def options(source: str = "test", **kw: Any) -> ImportOptions:
    kw.setdefault("region_bbox", HAMBURG)
    return ImportOptions(source=source, **kw)


def run(store: Store, path: Path, source: str = "test", **kw: Any):
    return run_import(store, path, options(source, **kw), geocoder=gazetteer_geocoder)


def db_state(store: Store) -> tuple:
    """Everything an aborted import must leave alone."""
    with store.engine.connect() as conn:
        return tuple(conn.execute(text(sql)).scalar() for sql in (
            "select count(*) from resource", "select coalesce(sum(version), 0) from resource",
            "select count(*) from resource_version", "select count(*) from source",
            "select count(*) from organization"))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def read(path: Path, **kw: Any) -> list:
    return list(CsvReader().read(path, options(**kw)))


def stored(store: Store, source: str = "test") -> dict[str, Resource]:
    with store.session() as session:
        return {r.source_id: r for r in session.scalars(
            select(Resource).where(Resource.source == source))}


# ---- reading ---------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_encodings_are_detected(tmp_path, encoding):
    path = write(tmp_path, "a.csv", (HEADER + ROWS).encode(encoding))
    names = [c.record["name"] for c in read(path)]
    assert names == ["Haus der Jugend Kirchdorf", "Bücherhalle Harburg",
                     "Stadtteilzentrum Rathaus"]
    assert read(path)[1].record["address"] == "Eddelbüttelstraße 47a"


@pytest.mark.parametrize("encoding", ["cp1251", "koi8_u"])
def test_cyrillic_in_an_8_bit_encoding_is_not_read_as_mojibake(tmp_path, encoding):
    text = ("name;lat;lon;address\n"
            "Центр підтримки біженців;53,55;10,0;Гамбург, Штайндамм 5\n"
            "Український клуб Гамбург;53,56;10,01;Вандсбек\n")
    path = write(tmp_path, "ua.csv", text.encode(encoding))
    with pytest.raises(ImportFailed) as err:
        read(path)
    (problem,) = err.value.problems
    assert problem.where.field == "encoding" and "line 2" in problem.message
    assert f"encoding: {'cp1251' if encoding == 'cp1251' else 'koi8_u'}" in problem.message
    mapping = write(tmp_path, "m.yaml", f"encoding: {encoding}\n")
    names = [c.record["name"] for c in read(path, mapping=mapping)]
    assert names == ["Центр підтримки біженців", "Український клуб Гамбург"]


def test_windows_1252_with_many_accents_is_still_windows_1252(tmp_path):
    path = write(tmp_path, "fr.csv", ("name;lat;lon;description\n"
                                      "Café Größe;53,55;10,0;Ærø, façade, naïve, Þjóð, Ça\n"
                                      "Élan Ünal Çava;53,56;10,01;Öffnungszeiten: Mo-Fr\n")
                 .encode("cp1252"))
    assert [c.record["name"] for c in read(path)] == ["Café Größe", "Élan Ünal Çava"]


def test_undecodable_file_is_refused(tmp_path):
    path = write(tmp_path, "a.csv", HEADER.encode() + b"1,Caf\x81,,,53.5,10.0,,\n")
    with pytest.raises(ImportFailed, match="UTF-8 or Windows-1252"):
        read(path)


@pytest.mark.parametrize("country, expected", [("DE", "01067"), ("CH", "8001"), ("at", "8001")])
def test_a_four_digit_postcode_gets_its_zero_back_only_in_germany(tmp_path, country,
                                                                   expected):
    # a spreadsheet turned 01067 (Dresden) into 1067; 8001 is Zürich's postcode as it is
    digits = "1067" if country == "DE" else "8001"
    path = write(tmp_path, "a.csv", f"name,plz,lat,lon\nTreff,{digits},53.5,10.0\n")
    (cand,) = read(path, region_country=country)
    assert cand.record["postcode"] == expected


def test_semicolons_german_decimal_commas_and_german_headers(tmp_path):
    path = write(tmp_path, "a.csv", "Bezeichnung;Straße;PLZ;Breite;Länge;Öffnungszeiten\n"
                                    "Sprachcafé Wilhelmsburg;Veringstraße 5;21107;53,5;9,99;"
                                    "Mo 10:00-12:00\n")
    (cand,) = read(path)
    assert cand.problems == []
    assert cand.record["name"] == "Sprachcafé Wilhelmsburg"
    assert (cand.record["lat"], cand.record["lon"]) == (53.5, 9.99)
    assert cand.record["postcode"] == "21107" and cand.record["address"] == "Veringstraße 5"
    assert cand.record["opening_hours"] == "Mo 10:00-12:00"


def test_delimiter_detection():
    assert detect_delimiter("a,b,c\n1,2,3\n") == ","
    assert detect_delimiter("name;lat;lon\nx;53,5;9,9\ny;53,6;9,8\n") == ";"
    assert detect_delimiter("name\tlat\tlon\nx\t53.5\t9.9\n") == "\t"


def test_tab_separated_with_housenumber_columns(tmp_path):
    path = write(tmp_path, "a.tsv", "Name\tStrasse\tHausnr\tHausnr_alpha\tlat\tlon\n"
                                    "Kita X\tImmenbarg\t6\ta\t53.65\t10.02\n")
    (cand,) = read(path)
    assert cand.record["address"] == "Immenbarg 6a"


def test_categories_audiences_languages_from_free_text(tmp_path):
    path = write(tmp_path, "a.csv", "name,lat,lon,Kategorie,Zielgruppe,Sprachen\n"
                 'Treff,53.5,10.0,"JUGENDZENTRUM, bücherhalle, Wunderland",Jugendliche,'
                 '"Deutsch, Arabisch, fa"\n')
    (cand,) = read(path)
    assert cand.record["categories"] == ["youth_centre", "library"]
    assert cand.record["audiences"] == ["youth"]
    assert cand.record["languages"] == ["de", "ar", "fa"]
    assert any("'Wunderland'" in w.message and w.where.item == 1 for w in cand.warnings)


def test_repeated_values_report_every_row_at_its_own_place(tmp_path):
    """Codes, dates and contact fields are remembered per distinct cell value (a file repeats
    them on every row); each row must still get its own warnings and errors, at its own row
    and column, and a good value must still be accepted after a bad one."""
    path = write(tmp_path, "a.csv", "name,lat,lon,Kategorie,phone,email\n"
                 + 'Treff A,53.5,10.0,"Wunderland, Bücherhalle",abc,nope\n' * 2
                 + 'Treff B,53.5,10.0,"Wunderland, Bücherhalle",+49 40 428540,a@example.org\n')
    cands = read(path)
    for item, cand in enumerate(cands, 1):
        assert cand.record["categories"] == ["library"]
        (warning,) = [w for w in cand.warnings if "Wunderland" in w.message]
        assert (warning.where.item, warning.where.field) == (item, "Kategorie")
    with pytest.raises(ImportFailed) as err:
        run_import(None, path, options(dry_run=True))  # validation fails before the store
    places = sorted((p.where.item, p.where.field) for p in err.value.problems)
    assert places == [(1, "email"), (1, "phone"), (2, "email"), (2, "phone")]


def test_mapping_file_overrides_columns_and_sets_default_categories(tmp_path):
    mapping = write(tmp_path, "m.yaml", "columns:\n  name: [Einrichtung]\n  source_id: [Nr]\n"
                                        "default_categories: [library]\n")
    path = write(tmp_path, "a.csv", "Nr,Einrichtung,name,lat,lon\n7,Bücherhalle Eimsbüttel,"
                                    "ignored,53.57,9.95\n")
    (cand,) = read(path, mapping=mapping)
    assert cand.record["name"] == "Bücherhalle Eimsbüttel"
    assert cand.record["source_id"] == "7"
    assert cand.record["categories"] == ["library"]
    assert any("name" in w.message for w in cand.warnings)  # the unused column is reported


def test_bad_mapping_file_names_the_key(tmp_path):
    mapping = write(tmp_path, "m.yaml", "default_categories: [bakery]\n")
    path = write(tmp_path, "a.csv", HEADER + ROWS)
    with pytest.raises(ImportFailed) as err:
        read(path, mapping=mapping)
    assert err.value.problems[0].where.field == "default_categories"
    assert "bakery" in str(err.value)


def test_source_id_is_a_stable_hash_without_an_id_column(tmp_path):
    path = write(tmp_path, "a.csv", "name,lat,lon\nA,53.5,10.0\nB,53.5,10.0\n")
    first, second = read(path)
    assert first.record["source_id"] == content_id({"name": "A", "lat": 53.5, "lon": 10.0})
    assert first.record["source_id"] != second.record["source_id"]
    assert [c.record["source_id"] for c in read(path)] == [first.record["source_id"],
                                                          second.record["source_id"]]


def test_projected_coordinates_need_crs(tmp_path):
    path = write(tmp_path, "a.csv", "name,x,y\nKita,567838.978,5946099.058\n")
    (cand,) = read(path)
    assert "--crs EPSG:25832" in cand.problems[0].message
    (cand,) = read(path, crs="EPSG:25832")
    assert cand.problems == []
    assert cand.record["lat"] == pytest.approx(53.65924, abs=1e-5)
    assert cand.record["lon"] == pytest.approx(10.02658, abs=1e-5)


def test_file_without_name_column_is_refused(tmp_path):
    path = write(tmp_path, "a.csv", "title_of_thing,lat,lon\nA,53.5,10.0\n")
    with pytest.raises(ImportFailed, match="no column for the name"):
        read(path)


def test_confidential_value_must_be_understood(tmp_path):
    path = write(tmp_path, "a.csv", "name,lat,lon,vertraulich\nA,53.5,10.0,ja\n"
                                    "B,53.5,10.1,vielleicht\n")
    first, second = read(path)
    assert first.record["location_confidential"] is True
    assert second.problems and second.problems[0].where.field == "vertraulich"


# ---- the real Hamburg OSM POI files ----------------------------------------------------------
def _unnamed_rows(path: Path) -> list[int]:
    with path.open(encoding="utf-8") as fh:
        return [n for n, row in enumerate(csv.DictReader(fh), 1) if not row["name"].strip()]


@pytest.mark.parametrize("name", POI_FILES)
def test_osm_poi_csv(store, name):
    path = shared_data("hamburg_osm_pois_2026_02", f"hamburg-poi-{name}-2026-02.csv")
    unnamed = _unnamed_rows(path)
    with path.open(encoding="utf-8") as fh:
        total = sum(1 for _ in csv.DictReader(fh))
    before = db_state(store)
    if unnamed:
        with pytest.raises(ImportFailed) as err:
            run(store, path, source=name)
        assert [(p.where.item, p.where.kind, p.where.field) for p in err.value.problems] == \
            [(n, "row", "name") for n in unnamed]
        assert db_state(store) == before
    report = run(store, path, source=name, skip_invalid=True)
    assert report.read == total
    assert [p.where.item for p in report.invalid] == unnamed
    assert report.created == total - len(unnamed)
    assert store.count() == total - len(unnamed)
    assert all(p.where.file == str(path) for p in report.invalid)


def test_osm_poi_csv_with_mapping_for_categories(store, tmp_path):
    path = shared_data("hamburg_osm_pois_2026_02", "hamburg-poi-libraries-2026-02.csv")
    mapping = write(tmp_path, "libraries.yaml", "default_categories: [library]\n")
    run(store, path, source="libraries", mapping=mapping, skip_invalid=True)
    res = stored(store, "libraries")["25149456"]
    assert res.name == "Bücherhalle Barmbek" and res.categories == ["library"]
    assert res.address == "Poppenhusenstraße 12" and res.postcode == "22305"


# ---- geocoding rows without coordinates -----------------------------------------------------
def test_rows_without_coordinates_are_placed_by_the_gazetteer(store, tmp_path):
    from mapservice import geocode

    if not hasattr(geocode, "centroid"):
        pytest.fail("mapservice.geocode.centroid is missing (the pipeline's geocoder needs it)")
    path = write(tmp_path, "a.csv", "name,plz,stadtteil\nTreff,20095,\nCafé,,Ottensen\n"
                                    "Nowhere,,\n")
    report = run(store, path, skip_invalid=True)
    assert report.created == 2
    assert [(p.where.item, p.where.field) for p in report.invalid] == [(3, "lat/lon")]
    res = stored(store)
    placed = {r.name: r for r in res.values()}
    lat, lon = geocode.centroid("20095")
    point = store.get(placed["Treff"].uid)
    assert (point.lat, point.lon) == pytest.approx((lat, lon), abs=1e-6)


# ---- crafted bad files: clear errors, nothing written -----------------------------------------
BAD_FILES = {
    "broken-quoting": (HEADER + ROWS + '4,"Treff,Weg 1,20095,53.5,10.0,,\n',
                       (4, None, "broken CSV")),
    "latitude-100": (HEADER + ROWS + "4,Treff,,,100,10.0,,\n", (4, "lat", "outside -90..90")),
    "not-a-number": (HEADER + ROWS + "4,Treff,,,53.5,zehn,,\n", (4, "lon", "not a number")),
    "bad-hours": (HEADER + ROWS + "4,Treff,,,53.5,10.0,,Mo-Fr 9 bis 17 Uhr\n",
                  (4, "opening_hours", "opening_hours")),
    "unquoted-delimiter": (HEADER + ROWS + "4,Treff,Weg 1, 2,20095,53.5,10.0,,\n",
                           (4, None, "9 values but 8 columns")),
    "nul-in-name": (HEADER + ROWS + "4,Treff\x00Nord,,,53.5,10.0,,\n",
                    (4, "name", "control character U+0000 at position 6")),
    "escape-in-street": (HEADER + ROWS + "4,Treff,Weg\x1b[31m 1,,53.5,10.0,,\n",
                         (4, "address", "control character U+001B at position 4")),
    "long-street": (HEADER + ROWS + "4,Treff," + "Lange Straße " * 30 + ",,53.5,10.0,,\n",
                    (4, "address", "longer than 300 characters (389)")),
    "lat-twice": ("id,name,lat,lon,lat\n1,Treff,53.5,10.0,54.0\n",
                  (None, "lat", "names this column 2 times (columns 3, 5): which one holds "
                   "the lat?")),
    "empty": ("", (None, None, "empty")),
    "header-only": (HEADER, (None, None, "no data rows")),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_is_refused_and_nothing_changes(store, tmp_path, case):
    run(store, write(tmp_path, "good.csv", HEADER + ROWS))  # something that must survive
    content, (item, field, message) = BAD_FILES[case]
    path = write(tmp_path, f"{case}.csv", content)
    before = db_state(store)
    with pytest.raises(ImportFailed) as err:
        run(store, path)
    problem = err.value.problems[0]
    assert message in problem.message, problem
    assert (problem.where.file, problem.where.item, problem.where.field) == \
        (str(path), item, field)
    assert db_state(store) == before


def test_control_characters_in_nested_fields_are_named(store, tmp_path):
    """Translations and organisations are checked too; tabs and line breaks are text."""
    path = write(tmp_path, "a.csv", "id,name,name_ar,description,organisation,lat,lon\n"
                                    "1,Treff,\"مركز\x07\",\"Zeile 1\nZeile\t2\",Verein,53.5,10.0\n"
                                    "2,Café,,,\"Verein\x00\",53.5,10.0\n")
    report = run(store, path, skip_invalid=True)
    assert sorted((p.where.item, p.where.field) for p in report.invalid) == [
        (1, "translations.ar.name"), (2, "organization.name")]
    assert report.created == 0


def test_translations_follow_the_rules_of_every_format(store, tmp_path):
    # (was: any key and any text taken, while HSDS refused "english", dropped empty texts and
    # stripped them: the formats disagreed)
    def row(value: dict) -> str:
        return '1,Treff,53.5,10.0,"' + json.dumps(value, ensure_ascii=False).replace(
            '"', '""') + '"\n'

    header = "id,name,lat,lon,translations\n"
    for value, message in (({"english": {"name": "x"}}, "'english' is no language code"),
                           ({"en": {"Name!": "x"}}, "en: 'Name!' is no field name")):
        with pytest.raises(ImportFailed) as err:
            run(store, write(tmp_path, "t.csv", header + row(value)))
        assert message in err.value.problems[0].message
        assert err.value.problems[0].where.field == "translations"
    run(store, write(tmp_path, "t.csv", header + row(
        {"en": {"name": "  padded  ", "description": ""}, "pt-BR": {"name": "Encontro"},
         "ar": {"address": "شارع"}})))
    assert stored(store)["1"].translations == {"en": {"name": "padded"},
                                                "pt-BR": {"name": "Encontro"},
                                                "ar": {"address": "شارع"}}


def test_an_organisations_own_details_are_read_checked_and_kept(store, tmp_path):
    header = ("id,name,lat,lon,organization,organization_website,organization_email,"
              "organization_phone,organization_description\n")
    path = write(tmp_path, "o.csv", header
                 + "1,Treff,53.5,10.0,Verein Nord,verein.example.org,Info@Example.org,"
                   "040 1234567,Ein Verein\n"
                 + "2,Café,53.5,10.01,Verein Süd,not a site,,,\n"
                 + "3,Laden,53.5,10.02,,https://example.org,,,\n")
    report = run(store, path, skip_invalid=True)
    assert [(p.where.item, p.where.field) for p in report.invalid] == [
        (2, "organization_website")]
    assert any("organisation details (website) without an organisation name; left out"
               in w.message and w.where.item == 3 for w in report.warnings)
    (org,) = store.organizations_of([r.uid for r in stored(store).values()
                                     if r.source_id == "1"]).values()
    assert (org["name"], org["website"], org["email"], org["phone"], org["description"]) == (
        "Verein Nord", "https://verein.example.org/", "info@example.org", "+49 40 1234567",
        "Ein Verein")


def test_values_longer_than_their_columns_are_named(store, tmp_path):
    """PostgreSQL would refuse them mid-import (SQLite would store them): refused up front."""
    path = write(tmp_path, "a.csv", "id,name,organisation,website,lat,lon\n"
                                    f"1,Treff,{'Verein ' * 30},,53.5,10.0\n"
                                    f"2,Café,,https://example.org/{'a' * 500},53.5,10.0\n"
                                    f"{'x' * 201},Laden,,,53.5,10.0\n")
    report = run(store, path, skip_invalid=True)
    assert sorted((p.where.item, p.where.field, p.message) for p in report.invalid) == [
        (1, "organization.name", "longer than 200 characters (209)"),
        (2, "website", "longer than 500 characters (520)"),
        (3, "source_id", "longer than 200 characters (201)")]
    assert report.created == 0


@pytest.mark.parametrize(("kw", "message"), [
    ({"source": "s" * 101}, "--source: longer than 100 characters (101)"),
    ({"source": "  "}, "--source: the source needs a name"),
    ({"licence": "l" * 201}, "--licence: longer than 200 characters (201)"),
    ({"attribution": "Daten\x00"},
     "--attribution: contains the control character U+0000 at position 6"),
    ({"attribution": "Daten\nHamburg"}, "--attribution: contains a line break or tab"),
    ({"licence": "CC\x85BY"}, "--licence: contains the control character U+0085 at position 3"),
])
def test_source_options_the_source_table_cannot_hold_are_refused(store, tmp_path, kw, message):
    from mapservice.errors import MapserviceError

    before = db_state(store)
    kw = dict(kw)  # the parameters are shared by both backends
    source = kw.pop("source", "test")
    with pytest.raises(MapserviceError, match=re.escape(message)):
        run(store, write(tmp_path, "a.csv", HEADER + ROWS), source, **kw)
    assert db_state(store) == before


def test_a_repeated_column_that_is_not_read_is_only_listed(store, tmp_path):
    path = write(tmp_path, "a.csv", "id,name,lat,lon,notiz,notiz\n1,Treff,53.5,10.0,a,b\n")
    report = run(store, path)
    assert report.created == 1
    assert any("columns not used: notiz, notiz" in p.message for p in report.warnings)


def test_bad_row_with_skip_invalid_writes_the_rest(store, tmp_path):
    path = write(tmp_path, "a.csv", HEADER + ROWS + "4,Treff,,,53.5,zehn,,\n")
    report = run(store, path, skip_invalid=True)
    assert report.created == 3 and [p.where.item for p in report.invalid] == [4]


# ---- re-imports --------------------------------------------------------------------------------
def test_reimport_is_idempotent_updates_and_archives(store, tmp_path):
    path = write(tmp_path, "a.csv", HEADER + ROWS)
    assert run(store, path).created == 3
    state = db_state(store)
    again = run(store, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert db_state(store) == state

    changed = write(tmp_path, "a.csv", HEADER + ROWS.replace("Mo-Fr 14:00-20:00",
                                                             "Mo-Sa 14:00-20:00"))
    report = run(store, changed)
    assert (report.updated, report.unchanged) == (1, 2)
    res = stored(store)["1"]
    assert res.version == 2 and res.opening_hours == "Mo-Sa 14:00-20:00"
    assert [v["diff"] for v in store.history(res.uid)][-1] == {
        "opening_hours": ["Mo-Fr 14:00-20:00", "Mo-Sa 14:00-20:00"]}

    shorter = write(tmp_path, "short.csv", HEADER + ROWS.splitlines(keepends=True)[0])
    report = run(store, shorter, archive_missing=True)
    assert report.archived == 2
    statuses = {sid: r.status for sid, r in stored(store).items()}
    assert statuses == {"1": "published", "2": "archived", "3": "archived"}


def test_moderator_locked_field_is_kept_and_reported(store, tmp_path):
    path = write(tmp_path, "a.csv", HEADER + ROWS)
    run(store, path)
    with store.session() as session, session.begin():
        res = session.scalar(select(Resource).where(Resource.source_id == "1"))
        res.name, res.locked_fields = "Haus der Jugend Kirchdorf (geprüft)", ["name"]
    changed = write(tmp_path, "a.csv", HEADER + ROWS.replace("Kirchdorf,", "Kirchdorf-Süd,"))
    report = run(store, changed)
    assert report.conflicts == [{"source_id": "1", "field": "name",
                                 "kept": "Haus der Jugend Kirchdorf (geprüft)",
                                 "incoming": "Haus der Jugend Kirchdorf-Süd"}]
    assert stored(store)["1"].name == "Haus der Jugend Kirchdorf (geprüft)"


def test_dry_run_writes_nothing(store, tmp_path):
    path = write(tmp_path, "a.csv", HEADER + ROWS)
    before = db_state(store)
    report = run(store, path, dry_run=True)
    assert report.created == 3 and db_state(store) == before


# ---- the command line --------------------------------------------------------------------------
def test_cli_import_with_mapping_and_bad_file(app, tmp_path):
    mapping = write(tmp_path, "m.yaml", "default_categories: [community_centre]\n")
    path = shared_data("hamburg_osm_pois_2026_02", "hamburg-poi-community-centers-2026-02.csv")
    runner = app.test_cli_runner()
    done = runner.invoke(args=["import", str(path), "--mapping", str(mapping)])
    assert done.exit_code == 2 and "row 21" in done.output and "field 'name'" in done.output
    done = runner.invoke(args=["import", str(path), "--mapping", str(mapping),
                               "--skip-invalid", "--source", "cc"])
    assert done.exit_code == 0, done.output
    assert "created 223" in done.output
    store = app.extensions["mapservice"]["store"]
    with store.engine.connect() as conn:
        cats = conn.execute(select(Resource.categories).where(Resource.source == "cc")).scalars()
        assert all(c == ["community_centre"] for c in cats)
        assert conn.execute(select(func.count()).select_from(Resource)).scalar() == 223


def test_reimport_without_licence_keeps_the_sources_attribution(app, tmp_path):
    mapping = write(tmp_path, "m.yaml", "default_categories: [community_centre]\n")
    path = shared_data("hamburg_osm_pois_2026_02", "hamburg-poi-community-centers-2026-02.csv")
    runner = app.test_cli_runner()
    base = ["import", str(path), "--mapping", str(mapping), "--skip-invalid", "--source", "cc"]
    done = runner.invoke(args=[*base, "--licence", "ODbL-1.0",
                               "--attribution", "© OpenStreetMap contributors"])
    assert done.exit_code == 0, done.output
    client = app.test_client()

    def shown() -> list[tuple[str, str, str]]:
        return [(s["name"], s["licence"], s["attribution"])
                for s in client.get("/api/v1/sources").get_json()["sources"]]

    assert shown() == [("cc", "ODbL-1.0", "© OpenStreetMap contributors")]
    done = runner.invoke(args=base)  # a nightly re-import that does not repeat the flags
    assert done.exit_code == 0 and "unchanged 223" in done.output, done.output
    assert shown() == [("cc", "ODbL-1.0", "© OpenStreetMap contributors")]
    done = runner.invoke(args=[*base, "--licence", "ODbL-1.0 (extract 2026-02)"])
    assert done.exit_code == 0, done.output
    assert shown() == [("cc", "ODbL-1.0 (extract 2026-02)", "© OpenStreetMap contributors")]


def test_shipped_mapping_loads_and_every_code_is_known():
    mapping = load_mapping()
    assert mapping.columns["name"][0] == "name"
    assert ("library",) == mapping.terms["categories"]["bucherhalle"]
    assert mapping.terms["categories"]["stadtteilzentrum"] == ("community_centre",)
