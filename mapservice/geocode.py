"""The offline gazetteer: Hamburg postcodes, Stadtteile and Bezirke (``data/gazetteer/*.csv``).

It answers "where is 22767 / Ottensen / eimsbuettel?" without any network request, and it is
the list of district names that ``district=`` accepts. Names are compared folded
(``search.fold``: case, accents and ä/ae, ö/oe, ü/ue, ß/ss do not matter; "Sankt" = "St.";
spaces and punctuation are ignored). Four Stadtteile share their name with their Bezirk
(Bergedorf, Eimsbüttel, Harburg, Wandsbek): a lookup returns both.

The gazetteer is read once per process (:func:`default`). There is no online geocoder: street
addresses are not resolved here.
"""
from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .paths import DATA_DIR
from .search import fold

GAZETTEER_DIR = DATA_DIR / "gazetteer"
LEVELS = ("bezirk", "stadtteil")
_POSTCODE = re.compile(r"(?<!\d)(\d{5})(?!\d)")
_MIN_PREFIX = 3
_MAX_PREFIX_RESULTS = 10


def name_key(name: str) -> str:
    """The key two place names are compared by: folded, "sankt" as "st", letters and digits
    only ("St. Georg" = "sankt georg" = "ST GEORG")."""
    folded = re.sub(r"\bsankt\b", "st", fold(name))
    return "".join(ch for ch in folded if ch.isalnum())


@dataclass(frozen=True)
class Place:
    """A Bezirk or a Stadtteil, with its centroid and bounding box (minlon, minlat, maxlon,
    maxlat)."""

    level: str
    id: str
    name: str
    bezirk: str
    lat: float
    lon: float
    bbox: tuple[float, float, float, float]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.level, "id": self.id, "name": self.name}
        if self.level == "stadtteil":
            out["bezirk"] = self.bezirk
        out.update(lat=self.lat, lon=self.lon, bbox=list(self.bbox))
        return out


@dataclass(frozen=True)
class Postcode:
    postcode: str
    lat: float
    lon: float
    stadtteil: str
    bezirk: str

    def as_dict(self) -> dict[str, Any]:
        return {"type": "postcode", "name": self.postcode, "postcode": self.postcode,
                "lat": self.lat, "lon": self.lon, "stadtteil": self.stadtteil,
                "bezirk": self.bezirk}


class Gazetteer:
    def __init__(self, places: list[Place], postcodes: list[Postcode]) -> None:
        # Bezirk before Stadtteil: a shared name means the larger area first.
        self.places = sorted(places, key=lambda p: (LEVELS.index(p.level), p.name))
        self.postcodes = {p.postcode: p for p in postcodes}
        self._by_key: dict[str, list[Place]] = {}
        for place in self.places:
            self._by_key.setdefault(name_key(place.name), []).append(place)

    @classmethod
    def load(cls, directory: Path = GAZETTEER_DIR) -> Gazetteer:
        with (directory / "places.csv").open(encoding="utf-8", newline="") as fh:
            places = [Place(level=row["level"], id=row["id"], name=row["name"],
                            bezirk=row["bezirk"], lat=float(row["lat"]), lon=float(row["lon"]),
                            bbox=(float(row["bbox_minlon"]), float(row["bbox_minlat"]),
                                  float(row["bbox_maxlon"]), float(row["bbox_maxlat"])))
                      for row in csv.DictReader(fh)]
        unknown = {p.level for p in places} - set(LEVELS)
        if unknown:
            raise ValueError(f"{directory / 'places.csv'}: unknown level(s) {sorted(unknown)}")
        with (directory / "postcodes.csv").open(encoding="utf-8", newline="") as fh:
            postcodes = [Postcode(postcode=row["postcode"], lat=float(row["lat"]),
                                  lon=float(row["lon"]), stadtteil=row["stadtteil"],
                                  bezirk=row["bezirk"])
                         for row in csv.DictReader(fh)]
        return cls(places, postcodes)

    def places_named(self, name: str) -> list[Place]:
        """The Bezirk and/or Stadtteil called ``name`` (folded comparison)."""
        return list(self._by_key.get(name_key(name), []))

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` place names closest to ``name`` (for "did you mean ...?")."""
        close = difflib.get_close_matches(name_key(name), list(self._by_key), n=n, cutoff=0.6)
        return [self._by_key[key][0].name for key in close]

    def bezirke(self) -> list[dict[str, Any]]:
        """Every Bezirk with its Stadtteile (by name), centroids and bounding boxes."""
        out = []
        for bezirk in (p for p in self.places if p.level == "bezirk"):
            item = bezirk.as_dict()
            item["stadtteile"] = [p.as_dict() for p in self.places
                                  if p.level == "stadtteil" and p.bezirk == bezirk.name]
            out.append(item)
        return out

    def geocode(self, query: str) -> list[dict[str, Any]]:
        """Postcodes, Stadtteile and Bezirke for a free-text ``query``.

        A five-digit number is a postcode (also inside "20095 Hamburg"). Otherwise a place whose
        name equals the query (folded); failing that, places whose name starts with it (at least
        three letters). Nothing found: an empty list.
        """
        results: list[dict[str, Any]] = []
        for code in _POSTCODE.findall(query):
            if code in self.postcodes:
                results.append(self.postcodes[code].as_dict())
        if results:
            return results
        key = name_key(query)
        if not key:
            return []
        exact = self._by_key.get(key)
        if exact:
            return [p.as_dict() for p in exact]
        if len(key) < _MIN_PREFIX:
            return []
        prefixed = [p for k, group in self._by_key.items() if k.startswith(key) for p in group]
        prefixed.sort(key=lambda p: (LEVELS.index(p.level), p.name))
        return [p.as_dict() for p in prefixed[:_MAX_PREFIX_RESULTS]]


@lru_cache(maxsize=1)
def default() -> Gazetteer:
    """The shipped gazetteer, read once per process (read-only data)."""
    return Gazetteer.load()


def centroid(value: str) -> tuple[float, float] | None:
    """(lat, lon) for an exact postcode or Stadtteil/Bezirk name, offline; None if unknown.

    Used by the importers to place records without coordinates. A name shared by a Stadtteil
    and a Bezirk (Wandsbek, Eimsbüttel, Bergedorf, Harburg) gives the Stadtteil: the smaller
    area is the better guess.
    """
    gazetteer = default()
    value = value.strip()
    if value in gazetteer.postcodes:
        code = gazetteer.postcodes[value]
        return code.lat, code.lon
    places = gazetteer.places_named(value)
    if not places:
        return None
    best = min(places, key=lambda p: -LEVELS.index(p.level))
    return best.lat, best.lon


__all__ = ["Gazetteer", "Place", "Postcode", "centroid", "default", "name_key"]
