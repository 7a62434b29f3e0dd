"""Open Referral HSDS import and export (importers/hsds.py, mapservice/hsds.py).

Real files: every HSDS 3.0 JSON example, the 3.0 tabular datapackage, the 1.1 datapackages
(simple, all_resources) from ../shared/data; crafted broken files; demo -> export -> import.
"""
from __future__ import annotations

import csv
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import text

from importers import ImportFailed, ImportOptions, run_import
from importers.hsds import export_hsds
from importers.pipeline import reader_for
from mapservice import hsds
from mapservice.demo import DEMO_FILE, load_demo
from mapservice.search import SearchQuery
from mapservice.store.base import approximate

from .conftest import _clean, shared_data
from .test_export import COMPARED  # the fields every export round trip must keep

HSDS3 = "hsds3_examples_openreferral"
HSDS1 = "hsds1_sample_datapackage_openreferral"
SAL_ID = "e94c9f38-1e8f-4564-91d4-d53501ab1765"  # the one service_at_location of the examples
# reader_for loads every format module now, at collection: the others import GDAL (pyogrio),
# and GDAL loaded after SpatiaLite crashes the interpreter at exit (run_import would load them
# lazily, after the test databases exist).
READER = reader_for("hsds")


# ---- helpers (test_hsds_api imports these) --------------------------------------------------
@lru_cache(maxsize=None)
def _schema() -> dict[str, Any]:
    path = shared_data(HSDS3, "schema", "service_with_definitions.json")
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = _schema()
    if kind != "service":
        schema = {"$ref": f"#/definitions/{kind}", "definitions": schema["definitions"]}
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def hsds_errors(kind: str, obj: Any) -> list[str]:
    """Schema errors of ``obj`` as an HSDS 3.0 ``kind`` (service, organization, location,
    service_at_location, taxonomy, taxonomy_term, ...): the compiled schema's root is the
    service, the other objects are its ``definitions``. Draft 2020-12 (the dialect HSDS 3.0's
    OpenAPI file declares), formats checked."""
    return [f"{e.json_path}: {e.message}" for e in _validator(kind).iter_errors(obj)]


def read(path: Path, **options: Any) -> list:
    return list(READER.read(path, ImportOptions(source="test", **options)))


def db_state(engine) -> dict[str, Any]:
    """Everything an import could change, to compare before and after a failed one."""
    with engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("resource", "organization", "resource_version", "source")} | {
            "versions": conn.execute(text("SELECT coalesce(sum(version), 0) FROM resource"))
            .scalar_one()}


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def service_doc(**service: Any) -> dict[str, Any]:
    """A small valid HSDS 3.0 service in Hamburg with one service_at_location."""
    location = {"id": "loc-1", "location_type": "physical", "name": "Stadtteilhaus",
                "latitude": 53.55, "longitude": 10.0,
                "addresses": [{"id": "a1", "address_1": "Beispielweg 1", "city": "Hamburg",
                               "state_province": "Hamburg", "postal_code": "20095",
                               "country": "DE", "address_type": "physical"}]}
    location.update(service.pop("location", {}))
    sal = {"id": "sal-1", "location": location}
    sal.update(service.pop("sal", {}))
    return {"id": "svc-1", "name": "Sprachcafé", "status": "active",
            "service_at_locations": [sal], **service}


def one(tmp_path: Path, **service: Any):
    """The single candidate of a crafted service."""
    (cand,) = read(write_json(tmp_path / "service.json", service_doc(**service)))
    return cand


def messages(problems) -> str:
    return "\n".join(str(p) for p in problems)


# ---- the official HSDS 3.0 JSON examples ---------------------------------------------------
# Every example file and what it holds: a service_at_location (with the latitude-100 trap at
# its location's JSON path), or nothing to import (the reason the import fails).
EXAMPLES = {
    "service_full.json": "$.service_at_locations[0].location.latitude",
    "service_at_location_full.json": "$.location.latitude",
    "organization_full.json": "$.services[0].service_at_locations[0].location.latitude",
    "service_at_location_list.json": "$.contents[0].location.latitude",
    "tabular.json": "latitude",
    "service_list.json": "has no service_at_locations",
    "organization_list.json": "organization without services",
    "location.json": "location without services",
    "taxonomy.json": "taxonomy without services",
    "taxonomy_list.json": "taxonomy without services",
    "taxonomy_term.json": "taxonomy_term without services",
    "taxonomy_term_list.json": "taxonomy_term without services",
    "base.json": "api without services",
}


def test_every_hsds3_json_example_is_covered():
    folder = shared_data(HSDS3)
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_hsds3_json_example(name):
    path = shared_data(HSDS3, name)
    expected = EXAMPLES[name]
    if "latitude" not in expected:  # nothing to import: a clear reason, no records
        with pytest.raises(ImportFailed) as failed:
            read(path)
        assert expected in str(failed.value) and str(path) in str(failed.value)
        return
    (cand,) = read(path)
    rec = cand.record
    assert rec["source_id"] == SAL_ID and rec["name"] == "Community Counselling"
    assert rec["organization"]["name"] == "Example Organization Inc."
    assert rec["website"] == "http://example.com/counselling"
    assert "lat" not in rec  # latitude 100 is never carried into the record
    (problem,) = cand.problems
    assert problem.where.field == expected and problem.where.item == 1
    assert "latitude 100 is outside -90..90" in problem.message
    assert "MyCity Civic Center" in problem.message
    if name != "service_at_location_list.json":  # the list form has no nested details
        assert rec["phone"] == "+44 1234 234567"  # quotes around the number removed
        assert rec["wheelchair"] == "yes"  # "Wheelchair access is possible on all levels."
        assert rec["cost"] == "paid"  # a cost option of 35 GBP
        assert rec["languages"] == [] and "'Urdu' is not one of ours" in messages(cand.warnings)
        assert "byweekno (41,42) limits it" in messages(cand.warnings)
        assert "opening_hours" not in rec


def test_latitude_100_aborts_and_skip_invalid_imports_the_rest(store, engine, tmp_path):
    """The 3.0 tabular example plus a second, valid record: the default run names the location
    row and field and writes nothing; --skip-invalid imports the valid one."""
    package = tmp_path / "csv"
    shutil.copytree(shared_data(HSDS3, "csv"), package)
    with (package / "locations.csv").open("a", encoding="utf-8") as fh:
        fh.write("loc-2,physical,,,Stadtteilhaus,,,,53.55,10.0,,\n")
    with (package / "service_at_location.csv").open("a", encoding="utf-8") as fh:
        fh.write("sal-2,ac148810-d857-441c-9679-408f346de14b,loc-2,\n")
    before = db_state(engine)
    with pytest.raises(ImportFailed) as failed:
        run_import(store, package, ImportOptions(source="hsds3"))
    (problem,) = failed.value.problems
    assert problem.where.file == str(package / "locations.csv")
    assert (problem.where.item, problem.where.field) == (1, "latitude")
    assert db_state(engine) == before

    report = run_import(store, package / "datapackage.json",
                        ImportOptions(source="hsds3", skip_invalid=True))
    assert (report.read, report.created, len(report.invalid)) == (2, 1, 1)
    (hit,) = store.search(SearchQuery()).hits
    assert hit.properties["name"] == "Community Counselling (Stadtteilhaus)"
    assert (hit.lat, hit.lon) == pytest.approx((53.55, 10.0))


def test_hsds3_datapackage_directory_and_file_read_alike():
    folder = shared_data(HSDS3, "csv")
    by_dir, by_file = read(folder), read(folder / "datapackage.json")
    assert [c.record for c in by_dir] == [c.record for c in by_file]
    (cand,) = by_dir
    rec = cand.record
    assert rec["source_id"] == SAL_ID
    assert rec["organization"] == {
        "name": "Example Organization Inc.", "source_id": "d9d5e0f5-d3ce-4f73-9a2f-4dd0ecc6c610",
        "description": "Example Org is a non-profit organization dedicated to providing "
                       "services to qualified beneficiaries",
        "website": "http://example.com/", "email": "email@example.com"}
    # A US postcode is no key for the Hamburg gazetteer: it stays in the address text.
    assert rec["address"] == "1-30 Main Street, ABC 1234 MyCity" and "postcode" not in rec
    assert (rec["phone"], rec["wheelchair"], rec["cost"]) == ("+44 1234 234567", "yes", "paid")
    assert rec["last_verified"] == "2005-01-01" and rec["status"] == "published"
    assert "schedules.csv, row 1, field 'byweekno'" in messages(cand.warnings)
    assert "languages.csv, row 1, field 'code'" in messages(cand.warnings)


@pytest.mark.parametrize("variant", ["simple", "all_resources"])
def test_hsds1_datapackage(variant, store, engine):
    folder = shared_data(HSDS1, variant)
    cands = read(folder)
    sal_ids = [line.split(",")[0] for line in
               (folder / "services_at_location.csv").read_text().splitlines()[1:]]
    assert [c.record["source_id"] for c in cands] == sal_ids  # one resource per row
    records = {c.record["name"]: c.record for c in cands}
    assert records["Yound Minds"]["lat"] == 39.428192  # the sample's typo is data, kept
    assert records["Dear Teacher Skills Refresh"]["status"] == "archived"  # inactive
    assert records["Never Homeless Helpline"]["organization"]["name"] == "Sanctuary Example City"
    if variant == "all_resources":
        helpline = records["Never Homeless Helpline"]
        assert helpline["opening_hours"] == "Mo-We 09:00-17:00"  # weekday 1-3
        assert helpline["languages"] == ["en", "es"]  # "English", "Spanish"
        assert "holiday schedule(s) are not mapped" in messages(cands[0].warnings)

    # Only one location has coordinates: the default run aborts, naming each record.
    before = db_state(engine)
    with pytest.raises(ImportFailed) as failed:
        run_import(store, folder, ImportOptions(source="hsds1"))
    no_place = [p for p in failed.value.problems if p.where.field == "lat/lon"]
    assert all(p.where.file.endswith("services_at_location.csv") for p in no_place)
    assert sorted(p.where.item for p in no_place) == [1, *range(3, 14)]  # all but row 2
    assert db_state(engine) == before
    report = run_import(store, folder, ImportOptions(source="hsds1", skip_invalid=True))
    assert report.created == 1 and {p.where.item for p in report.invalid} == {1, *range(3, 14)}
    assert [h.properties["name"] for h in store.search(SearchQuery()).hits] == ["Yound Minds"]


# ---- crafted broken files: a clear error with its place, nothing written --------------------
def _broken_row(folder: Path) -> Path:
    with (folder / "locations.csv").open("a", encoding="utf-8") as fh:
        fh.write("loc-2,physical,only,four fields\n")
    return folder


def _open_quote(folder: Path) -> Path:
    with (folder / "phones.csv").open("a", encoding="utf-8") as fh:
        fh.write('p2,,,,,,"+49 40 1234,voice,\n')
    return folder


def _missing_csv(folder: Path) -> Path:
    (folder / "services.csv").unlink()
    return folder / "datapackage.json"


BROKEN = {
    "not JSON": (lambda d: (d / "x.json").write_text("{not json") and d / "x.json",
                 "x.json", None, None, "not JSON"),
    "a list of the wrong objects": (
        lambda d: write_json(d / "x.json", [{"type": "Feature"}, {"foo": 1}]),
        "x.json", None, "$[0]", "not an HSDS service"),
    "a paginated list of the wrong objects": (
        lambda d: write_json(d / "x.json", {"total_items": 1, "contents": [[1, 2]]}),
        "x.json", None, "$.contents[0]", "not an HSDS service"),
    "a datapackage naming a missing CSV": (
        _missing_csv, "datapackage.json", None, "resources[2].path",
        "services.csv: no such file"),
    "a CSV row with too few fields": (
        _broken_row, "locations.csv", 2, None, "the row has 4 fields, the header has 12"),
    "a CSV with an unclosed quote": (_open_quote, "phones.csv", 2, None, "broken CSV"),
    "a directory without datapackage.json": (
        lambda d: (d / "empty").mkdir() or d / "empty", "datapackage.json", None, None,
        "needs a datapackage.json"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_fail_clearly_and_write_nothing(case, store, engine, tmp_path):
    make, file, item, field_, message = BROKEN[case]
    folder = tmp_path / "csv"
    shutil.copytree(shared_data(HSDS3, "csv"), folder)
    path = make(folder)
    store.upsert([{"source_id": "keep", "name": "Bestand", "lat": 53.5, "lon": 10.0}],
                 source="hsds", changed_by="test")
    before = db_state(engine)
    for skip_invalid in (False, True):
        with pytest.raises(ImportFailed) as failed:
            run_import(store, path, ImportOptions(source="hsds", format="hsds",
                                                  skip_invalid=skip_invalid))
        problem = failed.value.problems[0]
        assert problem.where.file.endswith(file), str(problem)
        assert (problem.where.item, problem.where.field) == (item, field_), str(problem)
        assert message in problem.message
        assert db_state(engine) == before


# ---- mapping details on crafted services -----------------------------------------------------
def _schedule(byday: str, opens: str, closes: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"s-{byday}-{opens}", "freq": "WEEKLY", "byday": byday, "opens_at": opens,
            "closes_at": closes, **extra}


@pytest.mark.parametrize("schedules, expected", [
    ([_schedule("MO,TU,WE,TH,FR", "09:00:00", "17:00:00")], "Mo-Fr 09:00-17:00"),
    ([_schedule("MO,TU,WE,TH", "09:00", "16:00"), _schedule("FR", "09:00", "13:00")],
     "Mo-Th 09:00-16:00; Fr 09:00-13:00"),
    ([_schedule("TU,TH", "09:00", "12:00"), _schedule("TU,TH", "14:00", "17:00")],
     "Tu,Th 09:00-12:00,14:00-17:00"),
    ([_schedule("FR", "20:00", "02:00")], "Fr 20:00-24:00; Sa 00:00-02:00"),
    ([_schedule("MO,TU,WE,TH,FR,SA,SU", "00:00", "00:00")], "24/7"),
    # the OSM string in the description wins when it means the same week (keeps "PH off")
    ([_schedule("MO,TU,WE,TH,FR", "10:00", "16:00",
                description="Mo-Fr 10:00-16:00; PH off")], "Mo-Fr 10:00-16:00; PH off"),
    ([_schedule("MO", "10:00", "16:00", description="Mo-Fr 10:00-16:00")], "Mo 10:00-16:00"),
    ([{"id": "d", "description": "We 15:00-17:00"}], "We 15:00-17:00"),
])
def test_schedules_become_opening_hours(tmp_path, schedules, expected):
    cand = one(tmp_path, schedules=schedules)
    assert cand.record["opening_hours"] == expected
    assert not cand.warnings and not cand.problems


@pytest.mark.parametrize("schedule, reason", [
    (_schedule("MO", "09:00", "17:00", freq="MONTHLY"), "freq MONTHLY is not weekly"),
    (_schedule("1MO", "09:00", "17:00"), "byday 1MO is not a weekday"),
    (_schedule("MO", "09:00", "17:00", interval=2), "interval 2 is not every week"),
    (_schedule("MO", "09:00Z", "17:00"), "is not a local time"),
    (_schedule("MO", "09:00", None), "closes_at None is not a local time"),
    (_schedule("MO", "09:00", "17:00", valid_to="2005-01-01"), "valid_to (2005-01-01)"),
    ({"id": "x", "description": "weekdays from 10 am"}, "only a free-text description"),
    ({"id": "x", "description": "Sa 10:00-12:00"}, "'Sa 10:00-12:00' adds to the other"),
])
def test_unconvertible_schedules_leave_hours_empty(tmp_path, schedule, reason):
    """Never a wrong value: one schedule we cannot say in OSM syntax empties the field."""
    ok = _schedule("TU", "09:00", "12:00")
    cand = one(tmp_path, schedules=[ok, schedule])
    assert "opening_hours" not in cand.record
    assert reason in messages(cand.warnings)
    assert "$.schedules[1]" in messages(cand.warnings)


def test_languages_terms_cost_accessibility_and_confidentiality(tmp_path):
    cand = one(
        tmp_path,
        languages=[{"id": "l1", "code": "en-GB"}, {"id": "l2", "name": "Arabic"},
                   {"id": "l3", "code": "deu"}, {"id": "l4", "name": "Farsi"},
                   {"id": "l5", "name": "Klingon", "code": "tlh"}],
        cost_options=[{"id": "c1", "option": "Kostenlos"}, {"id": "c2", "amount": 0}],
        attributes=[
            {"id": "t1", "taxonomy_term": {"id": "x1", "code": "language_cafe", "name": "x",
                                           "taxonomy": "mapservice"}},
            {"id": "t2", "taxonomy_term": {"id": "x2", "name": "Support Groups",
                                           "taxonomy": "Open Eligibility"}},
            {"id": "t3", "taxonomy_term": {"id": "x3", "name": "Beratung"}},
            {"id": "t4", "taxonomy_term": {"id": "x4", "code": "seniors", "name": "y",
                                           "taxonomy_detail": {"name": "mapservice_audiences"}}},
            {"id": "t5", "taxonomy_term": {"id": "x5", "code": "Q-1", "name": "Quilting",
                                           "taxonomy": "Hobbies"}}],
        location={"accessibility": [{"id": "a", "description": "Limited wheelchair access."}],
                  "attributes": [{"id": "f", "taxonomy_term": {
                      "id": "x6", "code": "approximate", "name": "z",
                      "taxonomy": "mapservice_location"}}]})
    rec = cand.record
    assert rec["languages"] == ["en", "ar", "de", "fa"]
    assert rec["categories"] == ["language_cafe", "support_group", "counselling"]
    assert rec["audiences"] == ["seniors"]
    assert (rec["cost"], rec["wheelchair"]) == ("free", "limited")
    assert rec["location_confidential"] is True
    assert rec["address"] == "Beispielweg 1" and rec["postcode"] == "20095"  # our own city
    warned = messages(cand.warnings)
    assert "language 'Klingon'" in warned and "$.languages[4].code" in warned
    assert "taxonomy term 'Quilting' (code 'Q-1', taxonomy 'Hobbies') is not mapped" in warned
    assert "$.attributes[4].taxonomy_term.name" in warned
    assert len(cand.warnings) == 2


@pytest.mark.parametrize("description, expected", [
    ("Wheelchair access is possible on all levels.", "yes"),
    ("Step-free entrance at the back.", "yes"),
    ("Not wheelchair accessible: 12 steps.", "no"),
    ("The lift is out of order. Wheelchair access is not possible.", "no"),
    ("Partially wheelchair accessible (ground floor).", "limited"),
    ("Induction loop for hearing aids.", "unknown"),
])
def test_accessibility_text(tmp_path, description, expected):
    cand = one(tmp_path, location={"accessibility": [{"id": "a", "description": description}]})
    assert cand.record["wheelchair"] == expected


@pytest.mark.parametrize("options, expected", [
    ([{"id": "c", "amount": 0}], "free"),
    ([{"id": "c", "option": "Reduced fee for students", "amount": 5}], "reduced"),
    ([{"id": "c", "amount": 12.5, "currency": "EUR"}], "paid"),
    ([{"id": "c", "amount": 0}, {"id": "d", "amount": 10}], "unknown"),
    ([{"id": "c", "option": "Ask at the desk"}], "unknown"),
])
def test_cost_options(tmp_path, options, expected):
    assert one(tmp_path, cost_options=options).record["cost"] == expected


def test_virtual_locations_are_reported_not_imported(tmp_path):
    doc = service_doc()
    doc["service_at_locations"].append({"id": "sal-2", "location": {
        "id": "web", "location_type": "virtual", "url": "https://example.org"}})
    (cand,) = read(write_json(tmp_path / "s.json", doc))
    assert cand.record["source_id"] == "sal-1"
    assert "sal-2 is at a virtual location" in messages(cand.warnings)
    assert "$.service_at_locations[1].location.location_type" in messages(cand.warnings)


def test_foreign_phone_numbers_keep_their_country(tmp_path):
    """A US number must not become a German one because validation defaults to DE."""
    us = {"addresses": [{"id": "a", "address_1": "1 Main St", "city": "Reno",
                         "postal_code": "89501", "country": "US", "address_type": "physical"}]}
    assert one(tmp_path, phones=[{"id": "p", "number": "(775) 555-0100"}],
               location=us).record["phone"] == "+1 775-555-0100"
    cand = one(tmp_path, phones=[{"id": "p", "number": "12"}], location=us)
    assert "phone" not in cand.record and "not a possible phone number in US" in \
        messages(cand.warnings)


@pytest.mark.parametrize("mapping, message", [
    ("terms:\n  Choir: {categories: [choir]}\n", "unknown code(s) of data/taxonomy.yaml: "
                                                "categories 'choir'"),
    ("wheelchair:\n  - {pattern: '(', value: 'yes'}\n", "missing ), unterminated subpattern"),
    ("terms: [", "not a usable HSDS mapping file"),
])
def test_a_bad_mapping_file_is_reported(tmp_path, mapping, message):
    path = tmp_path / "mapping.yaml"
    path.write_text(mapping, encoding="utf-8")
    with pytest.raises(ImportFailed) as failed:
        read(write_json(tmp_path / "s.json", service_doc()), mapping=path)
    assert message in str(failed.value) and str(path) in str(failed.value)


def test_sniff(tmp_path):
    assert READER.sniff(shared_data(HSDS3, "service_full.json"))
    assert READER.sniff(shared_data(HSDS3, "service_at_location_list.json"))
    assert READER.sniff(shared_data(HSDS3, "csv"))
    assert READER.sniff(shared_data(HSDS1, "simple", "datapackage.json"))
    assert not READER.sniff(shared_data(HSDS1, "simple", "services.csv"))
    assert not READER.sniff(write_json(tmp_path / "g.json", {
        "type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
            "service_id": 1}, "geometry": None}]}))
    assert not READER.sniff(write_json(tmp_path / "o.json", {"elements": []}))


# ---- export and round trip -------------------------------------------------------------------
def _demo_records() -> dict[str, dict[str, Any]]:
    doc = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    return {r["source_id"]: r for r in doc["resources"]}


def test_export_validates_and_hides_confidential_places(store, tmp_path):
    load_demo(store)
    out = tmp_path / "hsds.json"
    assert export_hsds(store, out) == store.count() == 194
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert {k: doc[k] for k in ("total_items", "size", "page_number", "first_page",
                                "last_page", "empty")} == {
        "total_items": 194, "size": 194, "page_number": 1, "first_page": True,
        "last_page": True, "empty": False}
    for service in doc["contents"]:
        assert hsds_errors("service", service) == [], service["name"]
    exact = {(r["lat"], r["lon"]) for r in _demo_records().values()}
    confidential = [s for s in doc["contents"]
                    if s["service_at_locations"][0]["location"].get("attributes")]
    assert len(confidential) == 4
    raw = out.read_text(encoding="utf-8")
    for service in confidential:
        loc = service["service_at_locations"][0]["location"]
        assert "addresses" not in loc
        assert (loc["latitude"], loc["longitude"]) not in exact
        assert (loc["longitude"], loc["latitude"]) == approximate(loc["longitude"],
                                                                  loc["latitude"])
    for record in _demo_records().values():
        if record["location_confidential"]:
            assert str(record["lat"]) not in raw and str(record["lon"]) not in raw
            assert not record["address"] or record["address"] not in raw


# What the HSDS round trip lost (a review): a postcode without a street, plain text that looks
# a little like HTML, a website that is no ASCII URI, hours that are never open.
EDGES = [
    {"source_id": "e1", "name": "Nur Postleitzahl", "lat": 53.5611, "lon": 9.9622,
     "postcode": "22765", "categories": ["counselling"], "opening_hours": "off",
     "description": "Für Kinder <6 Jahre & Eltern >30.\n\nZweiter   Absatz &amp; mehr",
     "website": "https://bücherhalle.de/über-uns?q=ä"},
    {"source_id": "e2", "name": "Schutzraum Nord", "lat": 53.6, "lon": 10.05,
     "postcode": "22391", "location_confidential": True, "categories": ["crisis_help"],
     "opening_hours": "Mo-Su off", "translations": {"fa": {"description": "کودکان <6 سال"}},
     "website": "https://xn--bcher-kva.de/%C3%BCber%20uns"},
    {"source_id": "e3", "name": "Feiertags zu", "lat": 53.55, "lon": 10.0,
     "address": "Beispielweg 2", "postcode": "20095", "opening_hours": "PH off",
     "description": "<p>Offen für <b>alle</b> &amp; jeden</p>"},
]


def test_round_trip_keeps_postcodes_plain_text_websites_and_closed_hours(store, engine,
                                                                           tmp_path):
    columns = ("source_id", "name", "lat", "lon", "address", "postcode", "categories",
               "opening_hours", "description", "website", "location_confidential",
               "translations")
    first = tmp_path / "edges.csv"
    with first.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", *columns[1:]])
        for rec in EDGES:
            writer.writerow([json.dumps(rec[c], ensure_ascii=False) if c == "translations"
                             and c in rec else ";".join(rec[c]) if c == "categories"
                             and c in rec else rec.get(c, "") for c in columns])
    assert run_import(store, first, ImportOptions(source="edges")).created == 3
    stored = {h.properties["name"]: h.properties for h in store.search(SearchQuery()).hits}
    # a website is stored in one form, whichever the file wrote
    assert stored["Schutzraum Nord"]["website"] == "https://bücher.de/über%20uns"
    out = tmp_path / "edges.json"
    export_hsds(store, out)
    doc = json.loads(out.read_text(encoding="utf-8"))
    for service in doc["contents"]:
        assert hsds_errors("service", service) == [], service["name"]
    by_name = {s["name"]: s for s in doc["contents"]}
    assert by_name["Nur Postleitzahl"]["url"] == \
        "https://xn--bcherhalle-9db.de/%C3%BCber-uns?q=%C3%A4"
    shelter = by_name["Schutzraum Nord"]["service_at_locations"][0]["location"]
    assert [a["address_1"] for a in shelter["addresses"]] == [""]  # the postcode, no street
    _clean(engine)
    report = run_import(store, out, ImportOptions(source="edges"))
    assert (report.created, report.invalid) == (3, [])
    after = {h.properties["name"]: h.properties for h in store.search(SearchQuery()).hits}
    fields = ("address", "postcode", "description", "translations", "website", "opening_hours",
              "location_confidential")
    for name, props in stored.items():
        expected = {f: props[f] for f in fields}
        if name == "Feiertags zu":  # real HTML is read as HTML
            expected["description"] = "Offen für alle & jeden"
        assert {f: after[name][f] for f in fields} == expected, name
    assert run_import(store, out, ImportOptions(source="edges")).unchanged == 3


def test_weekly_schedules_from_opening_hours():
    by_day = {s["byday"]: (s["opens_at"], s["closes_at"])
              for s in hsds.schedules("Mo-Th 09:00-16:00; Fr 09:00-13:00; PH off", "x")}
    assert by_day == {"MO,TU,WE,TH": ("09:00:00", "16:00:00"), "FR": ("09:00:00", "13:00:00")}
    (only,) = hsds.schedules("Mo[1] 10:00-12:00", "x")  # not weekly: description only
    assert only == {"id": only["id"], "description": "Mo[1] 10:00-12:00"}
    assert hsds.schedules(None, "x") == []


def test_round_trip_demo_export_import(store, engine, tmp_path):
    """demo -> export_hsds -> import into an empty database: the same resources, every field
    the GeoJSON and CSV round trips compare (translations, Stadtteil and Bezirk included)."""
    load_demo(store)

    def public(hit) -> dict[str, Any]:
        return {**{f: hit.properties[f] for f in COMPARED}, "lat": round(hit.lat, 6),
                "lon": round(hit.lon, 6)}

    before = {h.properties["uid"]: public(h)
              for h in store.search(SearchQuery(limit=1000)).hits}
    # The demo has something to lose: a round trip that dropped these would show.
    assert sum(bool(r["translations"]) for r in before.values()) == 194
    assert sum(bool(r["stadtteil"]) for r in before.values()) == 190
    assert sum(bool(r["bezirk"]) for r in before.values()) == 194
    out = tmp_path / "demo-hsds.json"
    export_hsds(store, out)
    _clean(engine)
    assert store.count() == 0
    report = run_import(store, out, ImportOptions(source="hsds-demo"))
    assert (report.created, report.invalid) == (194, [])
    assert [str(w) for w in report.warnings if "no category" not in w.message] == []
    with engine.connect() as conn:
        source_ids = dict(conn.execute(text("SELECT uid, source_id FROM resource")).all())
    after = {source_ids[h.properties["uid"]]: public(h)
             for h in store.search(SearchQuery(limit=1000)).hits}
    assert after == before
    again = run_import(store, out, ImportOptions(source="hsds-demo"))
    assert (again.unchanged, again.created, again.updated) == (194, 0, 0)


# Translations (RTL scripts, a translated name) and districts, also of a confidential place.
TRANSLATED = [
    {"source_id": "t1", "name": "Beratungscafé", "description": "Offene Beratung.",
     "lat": 53.5611, "lon": 9.9622, "address": "Beispielweg 1", "postcode": "20357",
     "stadtteil": "Sternschanze", "bezirk": "Altona", "categories": ["counselling"],
     "translations": {"ar": {"name": "مقهى الاستشارة", "description": "استشارة مفتوحة."},
                      "fa": {"description": "مشاوره باز."},
                      "en": {"name": "Counselling café", "description": "Open counselling."}}},
    {"source_id": "t2", "name": "Schutzraum", "lat": 53.6, "lon": 10.05,
     "location_confidential": True, "bezirk": "Wandsbek", "categories": ["crisis_help"],
     "translations": {"uk": {"description": "Притулок."}}},
]


def test_translations_and_districts_are_attribute_values(store, engine, tmp_path):
    """What HSDS 3.0 has no field for travels as attributes with a value: translations on the
    service (term field:language of mapservice_translations), Stadtteil/Bezirk on the
    service_at_location (mapservice_districts), the Bezirk also as the address's region. It
    validates, and imports back into an empty database unchanged."""
    store.upsert(TRANSLATED, source="t", changed_by="test")
    before = {h.properties["uid"]: {f: h.properties[f] for f in COMPARED}
              for h in store.search(SearchQuery()).hits}
    out = tmp_path / "hsds.json"
    assert export_hsds(store, out) == 2
    services = {s["name"]: s for s in json.loads(out.read_text(encoding="utf-8"))["contents"]}
    for service in services.values():
        assert hsds_errors("service", service) == [], service["name"]

    def values(attributes: list, taxonomy: str) -> dict[str, str]:
        found = {a["taxonomy_term"]["code"]: a["value"] for a in attributes
                 if a["taxonomy_term"]["taxonomy"] == taxonomy}
        assert all(a["taxonomy_term"]["taxonomy_detail"]["name"] == taxonomy
                   for a in attributes if a["taxonomy_term"]["taxonomy"] == taxonomy)
        return found

    cafe, shelter = services["Beratungscafé"], services["Schutzraum"]
    assert values(cafe["attributes"], hsds.TRANSLATIONS) == {
        "name:ar": "مقهى الاستشارة", "description:ar": "استشارة مفتوحة.",
        "description:fa": "مشاوره باز.", "name:en": "Counselling café",
        "description:en": "Open counselling."}
    (sal,) = cafe["service_at_locations"]
    assert values(sal["attributes"], hsds.DISTRICTS) == {"stadtteil": "Sternschanze",
                                                         "bezirk": "Altona"}
    assert {a["link_entity"] for a in sal["attributes"]} == {"service_at_location"}
    assert sal["location"]["addresses"][0]["region"] == "Altona"
    (hidden,) = shelter["service_at_locations"]
    assert values(hidden["attributes"], hsds.DISTRICTS) == {"bezirk": "Wandsbek"}
    assert "addresses" not in hidden["location"]

    _clean(engine)
    report = run_import(store, out, ImportOptions(source="back"))
    assert (report.created, report.invalid, report.warnings) == (2, [], [])
    with engine.connect() as conn:
        source_ids = dict(conn.execute(text("SELECT uid, source_id FROM resource")).all())
    after = {source_ids[h.properties["uid"]]: {f: h.properties[f] for f in COMPARED}
             for h in store.search(SearchQuery()).hits}
    assert after == before


def test_property_attributes_of_a_file_and_a_foreign_region(tmp_path):
    """Our property attributes are read from any HSDS file (districts also from the location);
    another publisher's address region is no Bezirk; a malformed term is named, not guessed."""
    def prop(taxonomy: str, code: str, value: Any, n: int) -> dict[str, Any]:
        return {"id": f"p{n}", "value": value, "taxonomy_term": {
            "id": f"x{n}", "code": code, "name": code, "taxonomy": taxonomy}}

    foreign = one(tmp_path, location={"addresses": [{
        "id": "a1", "address_1": "Beispielweg 1", "city": "Hamburg", "region": "MyRegion",
        "state_province": "Hamburg", "postal_code": "20095", "country": "DE",
        "address_type": "physical"}]})
    assert not foreign.record.keys() & {"stadtteil", "bezirk", "translations"}
    assert foreign.warnings == []

    cand = one(tmp_path,
               attributes=[prop(hsds.TRANSLATIONS, "description:ar", "نص", 1),
                           prop(hsds.TRANSLATIONS, "Arabic", "نص", 2),
                           prop(hsds.TRANSLATIONS, "name:tr", " ", 3)],
               location={"attributes": [prop(hsds.DISTRICTS, "stadtteil", "Altstadt", 4),
                                        prop(hsds.DISTRICTS, "bezirk", "Hamburg-Mitte", 5),
                                        prop(hsds.DISTRICTS, "kreis", "Pinneberg", 6)]})
    rec = cand.record
    assert rec["translations"] == {"ar": {"description": "نص"}}
    assert (rec["stadtteil"], rec["bezirk"]) == ("Altstadt", "Hamburg-Mitte")
    warned = messages(cand.warnings)
    assert "translation term code 'Arabic' is not field:language" in warned
    assert "$.attributes[1].taxonomy_term.code" in warned
    assert "translation name:tr has no value" in warned and "$.attributes[2].value" in warned
    assert "district term code 'kreis'" in warned
    assert len(cand.warnings) == 3  # no "not mapped to a category" for property terms


def test_the_service_city_comes_from_the_settings(tmp_path, app):
    """An address in the service's own city (REGION_CITY) is stored without the city; inside
    an app configured for another city, Hamburg is kept in the address text."""
    assert one(tmp_path).record["address"] == "Beispielweg 1"  # no app: the default, Hamburg
    app.config.update(REGION_CITY="Bremen", REGION_STATE="Bremen")
    with app.app_context():
        rec = one(tmp_path).record
    assert (rec["address"], rec["postcode"]) == ("Beispielweg 1, Hamburg", "20095")
