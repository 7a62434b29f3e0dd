"""Synthetic resources spread like a city, for the import and search benchmarks.

Resources cluster around Hamburg's Stadtteil centroids (``data/gazetteer/places.csv``). Each
Stadtteil gets a share proportional to its residents (the weights of the demo generator,
``data/demo/generate_demo.py``; Stadtteile with (almost) nobody living there get a small
share), and inside it the points fall off like a 2-D normal distribution around the centroid
(sigma = a quarter of the Stadtteil's half-extent, kept inside its bounding box). So the
inner city is dense, the Marschlande and the harbour are sparse, and several points can share
nearly the same place, as real listings do.

Deterministic: the same ``n`` and ``seed`` give the same rows, byte for byte, on any machine
(only :class:`random.Random` is used). Rows carry coordinates, so nothing needs geocoding.

    python -m bench.generate --rows 1000000 --seed 1 --out bench/out/resources-1000000.csv

Importable by other benchmarks: :func:`generate` yields CSV rows (lists as lists),
:func:`records` yields the same rows as store records (``Store.upsert``/``bulk_upsert`` input),
:func:`write_csv` writes the CSV the CSV importer reads.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import random
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

ROOT = Path(__file__).resolve().parent.parent
GAZETTEER = ROOT / "data" / "gazetteer"
DEMO_SCRIPT = ROOT / "data" / "demo" / "generate_demo.py"
METRES_PER_DEG_LAT = 111_320.0

#: The CSV columns, in order. Lists are joined with ``;`` (the CSV importer's list separator).
COLUMNS: tuple[str, ...] = (
    "id", "name", "description", "lat", "lon", "categories", "audiences", "languages", "cost",
    "wheelchair", "opening_hours", "address", "postcode", "stadtteil", "bezirk", "phone",
    "email", "website", "organization", "location_confidential", "last_verified",
)
LIST_COLUMNS = ("categories", "audiences", "languages")
LIST_SEPARATOR = ";"

# (name stem, categories, audiences, hours) — realistic German names, every code from
# data/taxonomy.yaml.
_KINDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    ("Sprachcafé", ("language_cafe",), ("everyone", "newcomers"), ("Tu 16:00-18:00", "Th 17:00-19:00")),
    ("Sprachtreff Deutsch", ("language_cafe", "newcomer_support"), ("newcomers",), ("We 15:00-17:00",)),
    ("Jugendtreff", ("youth_centre",), ("youth",), ("Mo-Fr 14:00-20:00", "Tu-Fr 15:00-20:00")),
    ("Mädchentreff", ("youth_centre", "women"), ("youth", "children"), ("Mo-Th 14:00-19:00",)),
    ("Familienzentrum", ("family_centre", "counselling"), ("families", "parents", "children"), ("Mo-Fr 09:00-13:00",)),
    ("Eltern-Kind-Treff", ("family_centre",), ("parents", "children"), ("Tu,Th 09:30-12:00",)),
    ("Stadtteilzentrum", ("community_centre",), ("everyone",), ("Mo-Fr 10:00-18:00", "Mo-Fr 09:00-21:00; Sa 10:00-14:00")),
    ("Nachbarschaftstreff", ("community_centre",), ("everyone", "seniors"), ("Mo-Fr 10:00-16:00",)),
    ("Bücherhalle", ("library", "education"), ("everyone",), ("Tu-Fr 11:00-19:00; Sa 10:00-14:00",)),
    ("Sozialberatung", ("counselling",), ("everyone",), ("Mo-Fr 09:00-15:00; PH off",)),
    ("Migrationsberatung", ("counselling", "newcomer_support"), ("newcomers",), ("Mo,We,Fr 10:00-13:00",)),
    ("Erziehungsberatung", ("counselling", "family_centre"), ("parents", "families"), ("Mo-Th 09:00-16:00; Fr 09:00-13:00",)),
    ("Schuldnerberatung", ("counselling",), ("everyone",), ("Tu 10:00-12:00; Th 14:00-17:00",)),
    ("Selbsthilfegruppe Trauer", ("self_help", "support_group"), ("everyone",), ("Mo 18:00-20:00",)),
    ("Selbsthilfegruppe Depression", ("self_help", "health"), ("everyone",), ("We 17:00-19:00",)),
    ("Gesprächsgruppe für Alleinerziehende", ("support_group", "family_centre"), ("parents",), ("Tu 18:30-20:30",)),
    ("Krisendienst", ("crisis_help", "health"), ("everyone",), ("24/7",)),
    ("Bildungszentrum", ("education",), ("everyone", "newcomers"), ("Mo-Fr 08:30-12:30",)),
    ("Jobcafé", ("employment", "newcomer_support"), ("newcomers", "everyone"), ("Mo,We 09:00-12:00",)),
    ("Gesundheitstreff", ("health",), ("everyone",), ("Mo-Fr 09:00-12:00",)),
    ("Sportverein", ("sport_leisure",), ("everyone", "youth"), ("Tu,Th 17:00-19:00",)),
    ("Kulturhaus", ("culture", "community_centre"), ("everyone",), ("Tu-Sa 11:00-18:00",)),
    ("Frauentreff", ("women", "community_centre"), ("women",), ("We 10:00-12:00",)),
    ("Queerer Treffpunkt", ("lgbtq",), ("lgbtq",), ("Fr 18:00-22:00",)),
    ("Seniorentreff", ("seniors", "community_centre"), ("seniors",), ("Tu,Th 14:00-17:00",)),
)
_QUALIFIERS = ("", "", "", "Nord", "Süd", "am Markt", "im Bürgerhaus", "am Park", "an der Kirche",
               "Mitte", "im Gemeindehaus", "West", "Ost", "am Bahnhof")
_TOPICS = ("Beratung", "offene Sprechstunde", "Hausaufgabenhilfe", "Kochen", "Ausflüge",
           "Sprachkurse", "Elterncafé", "Bewerbungstraining", "Musik", "Theater", "Gärtnern",
           "Nähwerkstatt", "Fahrradwerkstatt", "Spieleabend", "Frühstück", "Computerhilfe")
_STREETS = ("Beispielweg", "Musterstraße", "Am Probeplatz", "Testallee", "Fiktivstieg",
            "Platzhalterring", "Exempelkamp")
# Share of resources that offer each language besides German (demo generator's base rates).
_LANGUAGES = (("en", 0.40), ("ar", 0.20), ("tr", 0.17), ("fa", 0.17), ("uk", 0.16),
              ("ru", 0.06), ("fr", 0.05), ("pl", 0.04), ("es", 0.04), ("ro", 0.03))
_COST = (("free", 0.55), ("reduced", 0.10), ("paid", 0.10), ("unknown", 0.25))
_WHEELCHAIR = (("yes", 0.35), ("limited", 0.20), ("no", 0.15), ("unknown", 0.30))
_MIN_WEIGHT = 1.5  # thousand residents: a share for Stadtteile the demo leaves out


@lru_cache(maxsize=1)
def _demo() -> Any:
    # The resident weights are data owned by the demo generator: load them from there rather
    # than keep a second copy.
    spec = importlib.util.spec_from_file_location("_mapservice_demo", DEMO_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def places() -> list[dict[str, Any]]:
    """Every Stadtteil with its centroid, bounding box, weight and postcodes."""
    with (GAZETTEER / "places.csv").open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["level"] == "stadtteil"]
    with (GAZETTEER / "postcodes.csv").open(encoding="utf-8", newline="") as fh:
        postcodes = list(csv.DictReader(fh))
    weights = _demo().STADTTEIL_WEIGHT
    out = []
    for r in rows:
        lat, lon = float(r["lat"]), float(r["lon"])
        own = [p["postcode"] for p in postcodes if p["stadtteil"] == r["name"]]
        if not own:  # the nearest postcode centroid
            own = [min(postcodes, key=lambda p: (float(p["lat"]) - lat) ** 2
                       + ((float(p["lon"]) - lon) * 0.6) ** 2)["postcode"]]
        out.append({"name": r["name"], "bezirk": r["bezirk"], "lat": lat, "lon": lon,
                    "bbox": tuple(float(r[k]) for k in ("bbox_minlon", "bbox_minlat",
                                                        "bbox_maxlon", "bbox_maxlat")),
                    "weight": float(weights.get(r["name"], _MIN_WEIGHT)), "postcodes": own})
    return out


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for value, share in table:
        x -= share
        if x < 0:
            return value
    return table[-1][0]


def _point(rng: random.Random, place: dict[str, Any]) -> tuple[float, float]:
    """A point near ``place``'s centroid: normal falloff, inside its bounding box."""
    minlon, minlat, maxlon, maxlat = place["bbox"]
    coslat = math.cos(math.radians(place["lat"]))
    half_m = min((maxlon - minlon) * coslat, maxlat - minlat) * METRES_PER_DEG_LAT / 2
    sigma = max(half_m / 4, 100.0)
    for _ in range(20):
        dx, dy = rng.gauss(0, sigma), rng.gauss(0, sigma)
        lat = place["lat"] + dy / METRES_PER_DEG_LAT
        lon = place["lon"] + dx / (METRES_PER_DEG_LAT * coslat)
        if minlon <= lon <= maxlon and minlat <= lat <= maxlat:
            break
    else:
        lat, lon = place["lat"], place["lon"]
    return round(lat, 7), round(lon, 7)


def generate(n: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """``n`` rows keyed by :data:`COLUMNS`; list columns are lists, empty values ``""``."""
    rng = random.Random(seed)
    spots = places()
    cumulative, total = [], 0.0
    for p in spots:
        total += p["weight"]
        cumulative.append(total)
    n_orgs = max(n // 25, 1)
    for i in range(1, n + 1):
        place = spots[rng.choices(range(len(spots)), cum_weights=cumulative)[0]]
        stem, categories, audiences, hours = _KINDS[rng.randrange(len(_KINDS))]
        qualifier = rng.choice(_QUALIFIERS)
        name = " ".join(part for part in (stem, qualifier, place["name"]) if part)
        lat, lon = _point(rng, place)
        languages = ["de"] + [code for code, share in _LANGUAGES if rng.random() < share]
        topics = rng.sample(_TOPICS, 2)
        confidential = rng.random() < 0.005
        phone = rng.random() < 0.5
        yield {
            "id": f"gen-{i}",
            "name": name,
            "description": f"{stem} in {place['name']}: {topics[0]} und {topics[1]}. "
                           f"Offen für alle, die Unterstützung suchen.",
            "lat": lat, "lon": lon,
            "categories": list(categories), "audiences": list(audiences),
            "languages": languages,
            "cost": _pick(rng, _COST), "wheelchair": _pick(rng, _WHEELCHAIR),
            "opening_hours": rng.choice(hours),
            "address": "" if confidential else f"{rng.choice(_STREETS)} {rng.randint(1, 180)}",
            "postcode": rng.choice(place["postcodes"]),
            "stadtteil": place["name"], "bezirk": place["bezirk"],
            # Fictional numbers: the range kept free for media productions in Hamburg.
            "phone": f"+49 40 66969{rng.randrange(1000):03d}" if phone else "",
            "email": f"kontakt-{i}@example.org" if rng.random() < 0.3 else "",
            "website": f"https://example.org/angebot/{i}" if rng.random() < 0.4 else "",
            "organization": (f"Träger {rng.randrange(n_orgs) + 1} e.V."
                             if rng.random() < 0.3 else ""),
            "location_confidential": "true" if confidential else "",
            "last_verified": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        }


def to_record(row: dict[str, Any]) -> dict[str, Any]:
    """A generated row as a store record (what the importers hand to ``Store.upsert``)."""
    rec: dict[str, Any] = {"source_id": row["id"]}
    for key in COLUMNS[1:]:
        value = row[key]
        rec[key] = None if value == "" else value
    rec["location_confidential"] = row["location_confidential"] == "true"
    rec["organization"] = {"name": row["organization"]} if row["organization"] else None
    return rec


def records(n: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """``n`` store records (see :func:`to_record`)."""
    return map(to_record, generate(n, seed))


def _write(rows: Iterable[dict[str, Any]], fh: TextIO) -> int:
    writer = csv.writer(fh)
    writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([LIST_SEPARATOR.join(row[c]) if c in LIST_COLUMNS else row[c]
                         for c in COLUMNS])
        count += 1
    return count


def write_csv(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """Write ``rows`` as UTF-8 CSV with a header; returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        count = _write(rows, fh)
    tmp.replace(path)  # a cached file is never half written
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="CSV file (default: stdout)")
    args = parser.parse_args(argv)
    if args.out is None:
        _write(generate(args.rows, args.seed), sys.stdout)
        return 0
    count = write_csv(generate(args.rows, args.seed), args.out)
    print(f"wrote {count} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
