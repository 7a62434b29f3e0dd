"""The offline gazetteer and the lookup endpoints: /geocode, /districts, /categories.

They read only the shipped data files (no database), so one in-memory app serves the module;
expectations come straight from the CSV files and taxonomy.yaml."""
from __future__ import annotations

import csv
from urllib.parse import quote

import pytest
import yaml

from mapservice.geocode import Gazetteer, default, name_key
from mapservice.paths import DATA_DIR

PLACES = list(csv.DictReader((DATA_DIR / "gazetteer" / "places.csv").open(encoding="utf-8")))
POSTCODES = list(csv.DictReader((DATA_DIR / "gazetteer" / "postcodes.csv")
                                .open(encoding="utf-8")))
TAXONOMY = yaml.safe_load((DATA_DIR / "taxonomy.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from mapservice import create_app

    app = create_app({"DATABASE_URL": "sqlite://", "TESTING": True,
                      "INSTANCE_DIR": str(tmp_path_factory.mktemp("instance")),
                      "TILE_URL": "http://tiles.invalid/{z}/{x}/{y}.png"})
    yield app.test_client()
    app.extensions["mapservice"]["engine"].dispose()


def _get(client, url: str, status: int = 200, **kwargs) -> dict:
    r = client.get(url, **kwargs)
    assert r.status_code == status, (url, r.get_json())
    return r.get_json()


# ---- the gazetteer ----------------------------------------------------------------------------
def test_gazetteer_reads_every_row_once():
    gaz = default()
    assert gaz is default()  # read once per process
    assert len(gaz.places) == len(PLACES) == 111 and len(gaz.postcodes) == len(POSTCODES)
    assert sum(p.level == "bezirk" for p in gaz.places) == 7
    shared = {p.name for p in gaz.places if p.level == "stadtteil"} & {
        p.name for p in gaz.places if p.level == "bezirk"}
    assert shared == {"Bergedorf", "Eimsbüttel", "Harburg", "Wandsbek"}


def test_name_keys():
    assert name_key("Eimsbüttel") == name_key("eimsbuettel") == name_key("EIMSBUTTEL")
    assert name_key("St. Pauli") == name_key("sankt pauli") == name_key("ST-PAULI")
    assert name_key("Hamburg-Mitte") == name_key("hamburg mitte")
    assert name_key("Neuallermöhe") == name_key("Neuallermoehe")


def test_every_place_is_found_by_its_name_in_any_spelling():
    gaz = default()
    for row in PLACES:
        for spelling in (row["name"], row["name"].upper(),
                         row["name"].replace("ü", "ue").replace("ö", "oe").replace("ä", "ae")):
            found = gaz.places_named(spelling)
            assert (row["level"], row["id"]) in {(p.level, p.id) for p in found}, spelling


def test_suggestions_for_typos():
    gaz = default()
    assert gaz.suggest("Eimsbütel")[0] == "Eimsbüttel"
    assert "Ottensen" in gaz.suggest("Otensen")
    assert gaz.suggest("qqqqqqqq") == []


def test_load_refuses_an_unknown_level(tmp_path):
    (tmp_path / "places.csv").write_text(
        "level,id,name,bezirk,lat,lon,bbox_minlon,bbox_minlat,bbox_maxlon,bbox_maxlat\n"
        "city,1,Hamburg,,53.5,10.0,9.7,53.3,10.3,53.8\n", encoding="utf-8")
    (tmp_path / "postcodes.csv").write_text("postcode,lat,lon,stadtteil,bezirk\n",
                                            encoding="utf-8")
    with pytest.raises(ValueError, match="unknown level"):
        Gazetteer.load(tmp_path)


# ---- /geocode -------------------------------------------------------------------------------
@pytest.mark.parametrize("row", POSTCODES[::7], ids=lambda r: r["postcode"])
def test_geocode_postcode(client, row):
    for q in (row["postcode"], f"{row['postcode']} Hamburg", f" {row['postcode']}, HH "):
        doc = _get(client, f"/api/v1/geocode?q={quote(q)}")
        assert doc["results"] == [{"type": "postcode", "name": row["postcode"],
                                   "postcode": row["postcode"], "lat": float(row["lat"]),
                                   "lon": float(row["lon"]), "stadtteil": row["stadtteil"],
                                   "bezirk": row["bezirk"]}]


@pytest.mark.parametrize("q, expected", [
    ("Ottensen", [("stadtteil", "Ottensen")]),
    ("ottensen", [("stadtteil", "Ottensen")]),
    ("Eimsbüttel", [("bezirk", "Eimsbüttel"), ("stadtteil", "Eimsbüttel")]),
    ("eimsbuettel", [("bezirk", "Eimsbüttel"), ("stadtteil", "Eimsbüttel")]),
    ("EIMSBÜTTEL", [("bezirk", "Eimsbüttel"), ("stadtteil", "Eimsbüttel")]),
    ("Wandsbek", [("bezirk", "Wandsbek"), ("stadtteil", "Wandsbek")]),
    ("harburg", [("bezirk", "Harburg"), ("stadtteil", "Harburg")]),
    ("Hamburg-Mitte", [("bezirk", "Hamburg-Mitte")]),
    ("sankt georg", [("stadtteil", "St. Georg")]),
    ("altona-nord", [("stadtteil", "Altona-Nord")]),
])
def test_geocode_names(client, q, expected):
    doc = _get(client, f"/api/v1/geocode?q={quote(q)}")
    assert [(r["type"], r["name"]) for r in doc["results"]] == expected
    rows = {(r["level"], r["name"]): r for r in PLACES}
    for result in doc["results"]:
        row = rows[(result["type"], result["name"])]
        assert (result["lat"], result["lon"]) == (float(row["lat"]), float(row["lon"]))
        assert result["bbox"] == [float(row[k]) for k in ("bbox_minlon", "bbox_minlat",
                                                          "bbox_maxlon", "bbox_maxlat")]
        minlon, minlat, maxlon, maxlat = result["bbox"]
        assert minlon <= result["lon"] <= maxlon and minlat <= result["lat"] <= maxlat


def test_geocode_prefix_when_no_exact_name(client):
    doc = _get(client, "/api/v1/geocode?q=altona")
    names = [r["name"] for r in doc["results"]]
    assert names[0] == "Altona" and len(names) == 1  # the exact name wins
    doc = _get(client, "/api/v1/geocode?q=alton")
    assert {"Altona", "Altona-Altstadt", "Altona-Nord"} <= {r["name"] for r in doc["results"]}
    assert _get(client, "/api/v1/geocode?q=al")["results"] == []  # too short to guess


@pytest.mark.parametrize("q", ["Atlantis", "99999", "10115", "Große Bergstraße 12", "*", "ä"])
def test_geocode_unknown_is_an_empty_200(client, q):
    assert _get(client, f"/api/v1/geocode?q={quote(q)}")["results"] == []


@pytest.mark.parametrize("query", ["", "q=", "q=%20%20", "q=a&q=b", "q=x&lang=de",
                                   "q=" + "x" * 201])
def test_geocode_bad_requests(client, query):
    body = _get(client, f"/api/v1/geocode?{query}", 400)
    assert body["parameter"] in ("q", "lang")


# ---- /districts -------------------------------------------------------------------------------
def test_districts_lists_bezirke_with_their_stadtteile(client):
    doc = _get(client, "/api/v1/districts")
    bezirke = doc["districts"]
    assert [b["name"] for b in bezirke] == sorted(r["name"] for r in PLACES
                                                  if r["level"] == "bezirk")
    expected = {(r["bezirk"], r["name"]) for r in PLACES if r["level"] == "stadtteil"}
    got = {(b["name"], s["name"]) for b in bezirke for s in b["stadtteile"]}
    assert got == expected and len(got) == 104
    for b in bezirke:
        assert b["type"] == "bezirk" and len(b["bbox"]) == 4
        for s in b["stadtteile"]:
            assert s["type"] == "stadtteil" and s["bezirk"] == b["name"]
    assert _get(client, "/api/v1/districts?lang=de", 400)["parameter"] == "lang"


# ---- /categories ------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", TAXONOMY["languages_ui"])
def test_categories_in_every_ui_language(client, lang):
    doc = _get(client, f"/api/v1/categories?lang={lang}")
    assert doc["lang"] == lang
    assert [c["code"] for c in doc["categories"]] == list(TAXONOMY["categories"])
    for item in doc["categories"]:
        entry = TAXONOMY["categories"][item["code"]]
        assert item["label"] == entry["labels"][lang]
        assert item["description"] == entry["descriptions"][lang]
        assert (item["domains"], item["icon"], item["color"]) == (
            entry["domains"], entry["icon"], entry["color"])
    assert [d["label"] for d in doc["domains"]] == [
        d["labels"][lang] for d in TAXONOMY["domains"].values()]
    assert [a["code"] for a in doc["audiences"]] == list(TAXONOMY["audiences"])
    assert [la["code"] for la in doc["languages"]] == list(TAXONOMY["languages"])
    assert all(la["native"] for la in doc["languages"])


def test_categories_follow_accept_language(client):
    r = client.get("/api/v1/categories", headers={"Accept-Language": "fa-IR, en;q=0.5"})
    doc = r.get_json()
    assert doc["lang"] == "fa" and r.headers["Content-Language"] == "fa"
    assert "Accept-Language" in r.headers["Vary"]
    assert doc["categories"][0]["label"] == TAXONOMY["categories"]["support_group"]["labels"]["fa"]
    # lang wins over the header; nothing offered: the default language
    assert _get(client, "/api/v1/categories?lang=uk",
                headers={"Accept-Language": "fa"})["lang"] == "uk"
    assert _get(client, "/api/v1/categories", headers={"Accept-Language": "ja"})["lang"] == "de"


@pytest.mark.parametrize("query, parameter", [("lang=xx", "lang"), ("lang=", "lang"),
                                              ("language=en", "language")])
def test_categories_bad_requests(client, query, parameter):
    assert _get(client, f"/api/v1/categories?{query}", 400)["parameter"] == parameter
