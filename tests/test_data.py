"""The data files: taxonomy labels in every UI language, demo coverage, gazetteer facts."""
from __future__ import annotations

import csv
import json

import opening_hours

from mapservice import taxonomy
from mapservice.models import COSTS, WHEELCHAIR

from .conftest import ROOT

TAX = taxonomy.load()
BEZIRKE = {"Hamburg-Mitte", "Altona", "Eimsbüttel", "Hamburg-Nord", "Wandsbek", "Bergedorf",
           "Harburg"}
CATEGORIES = ["support_group", "self_help", "counselling", "crisis_help", "youth_centre",
              "family_centre", "language_cafe", "newcomer_support", "community_centre", "library",
              "education", "employment", "health", "sport_leisure", "culture", "women", "lgbtq",
              "seniors"]


def test_taxonomy_has_every_code_and_label():
    assert list(TAX.categories) == CATEGORIES
    assert set(TAX.ui_languages) == {"de", "en", "ar", "fa", "uk", "tr"}
    for kind in ("domains", "categories", "audiences", "languages"):
        for code, entry in getattr(TAX, kind).items():
            for lang in TAX.ui_languages:
                assert entry["labels"].get(lang, "").strip(), (kind, code, lang)
    for code, entry in TAX.categories.items():
        assert entry["domains"] and set(entry["domains"]) <= set(TAX.domains), code
        assert all(entry["descriptions"].get(lang) for lang in TAX.ui_languages), code
    assert {"children", "youth", "families", "parents", "women", "men", "newcomers", "seniors",
            "lgbtq", "everyone"} == set(TAX.audiences)


def test_demo_covers_categories_bezirke_and_is_labelled():
    doc = json.loads((ROOT / "data/demo/resources.json").read_text(encoding="utf-8"))
    items = doc["resources"]
    assert len(items) >= 150
    assert "fictional" in doc["notice"].lower()
    assert {c for r in items for c in r["categories"]} == set(CATEGORIES)
    assert {r["bezirk"] for r in items} == BEZIRKE
    assert len({r["source_id"] for r in items}) == len(items)
    for r in items:
        assert r["name"].startswith("Demo: "), r["name"]
        assert set(r["audiences"]) <= set(TAX.audiences)
        assert set(r["languages"]) <= set(TAX.languages)
        assert r["cost"] in COSTS and r["wheelchair"] in WHEELCHAIR
        assert 53.39 <= r["lat"] <= 53.74 and 9.73 <= r["lon"] <= 10.33
        if r["opening_hours"]:
            opening_hours.OpeningHours(r["opening_hours"])  # raises on invalid syntax
        assert r["email"] is None or r["email"].endswith("@example.org")
    assert len({r["cost"] for r in items}) >= 3 and len({r["wheelchair"] for r in items}) >= 3
    assert len({lang for r in items for lang in r["languages"]}) >= 10
    assert sum(r["location_confidential"] for r in items) >= 1


def test_gazetteer_tables():
    with (ROOT / "data/gazetteer/postcodes.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 90 and all(len(r["postcode"]) == 5 for r in rows)
    assert {r["bezirk"] for r in rows} == BEZIRKE
    with (ROOT / "data/gazetteer/places.csv").open(encoding="utf-8") as fh:
        places = list(csv.DictReader(fh))
    assert sum(p["level"] == "bezirk" for p in places) == 7
    assert sum(p["level"] == "stadtteil" for p in places) == 104
    assert "ATTRIBUTION" in " ".join(p.name.upper() for p in (ROOT / "data").iterdir())
