"""Search hits -> GeoJSON / JSON / CSV. Features are plain dicts serialised by orjson."""
from __future__ import annotations

import csv
import datetime as dt
import functools
import io
from typing import Any, Iterable

from .store import Hit

CSV_FIELDS = ("id", "name", "lat", "lon", "distance_m", "categories", "audiences", "languages",
              "cost", "wheelchair", "opening_hours", "address", "postcode", "stadtteil", "bezirk",
              "phone", "email", "website", "organization", "location_confidential",
              "last_verified", "updated_at", "source", "description")


def timestamp(value: dt.datetime) -> str:
    """ISO 8601 in whole seconds, UTC: GDAL's GeoJSON reader turns a fraction like .9996 s into
    an invalid 1000 ms, and SQLite hands back naive (UTC) values."""
    return _utc_seconds(value)


@functools.lru_cache(maxsize=4096)
def _utc_seconds(value: dt.datetime) -> str:
    # Cached: the rows of a page share few update times (an import stamps all its rows alike),
    # and formatting one costs more than the rest of its feature (budget: 300k features/s).
    if value.utcoffset():  # naive values are UTC already
        value = value.astimezone(dt.timezone.utc)
    return value.isoformat(timespec="seconds")[:19] + "Z"


def properties(hit: Hit) -> dict[str, Any]:
    props = hit.properties.copy()  # a flat copy costs a third of rebuilding with "id" first
    props["id"] = props.pop("uid")
    if props.get("location_confidential"):
        props["location_precision"] = "approximate"
    updated = props.get("updated_at")
    if isinstance(updated, dt.datetime):
        props["updated_at"] = _utc_seconds(updated)
    if hit.distance_m is not None:
        props["distance_m"] = hit.distance_m
    return props


def feature(hit: Hit) -> dict[str, Any]:
    props = properties(hit)
    return {"type": "Feature", "id": props["id"],
            "geometry": {"type": "Point", "coordinates": [hit.lon, hit.lat]},
            "properties": props}


def feature_collection(hits: Iterable[Hit], **members: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [feature(h) for h in hits], **members}


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ";".join(map(str, value))
    if isinstance(value, dict):
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # a spreadsheet must not run a cell as a formula
    return value


def to_csv(hits: Iterable[Hit]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for hit in hits:
        row = properties(hit)
        row.update(lat=hit.lat, lon=hit.lon)
        writer.writerow({k: _csv_cell(row.get(k)) for k in CSV_FIELDS})
    return out.getvalue()
