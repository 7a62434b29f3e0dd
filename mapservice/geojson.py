"""Search hits -> GeoJSON / JSON / CSV.

Every resource's Feature is serialised once, when it is written (``resource.feature``, see
migration 0005), by :func:`stored_feature`; a page of results joins those texts. Where the
store had no stored text (not built yet), the same function builds it from the columns.
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
import io
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import orjson

if TYPE_CHECKING:
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


def public_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's public fields (as the store reads them: ``uid``, datetimes) as a
    Feature's properties: ``id`` first, ``organization`` last (see :func:`feature_head`)."""
    out = {"id": props["uid"]}
    for name, value in props.items():
        if name not in _MOVED:
            out[name] = value
    updated = out.get("updated_at")
    if isinstance(updated, dt.datetime):
        out["updated_at"] = _utc_seconds(updated)
    if props.get("location_confidential"):
        out["location_precision"] = "approximate"
    out["organization"] = props.get("organization")
    return out


_MOVED = frozenset({"uid", "organization"})
_HEAD_END = ',"organization":'


def feature_head(props: Mapping[str, Any], lon: float, lat: float) -> str:
    """The serialised Feature of a resource up to the value of its last property,
    ``organization``: ``...,"organization":``. A bulk import writes it with the rows and lets
    the database append the organisation's stored name and ``}}``; :func:`stored_feature`
    does the same in Python. ``props`` need not hold ``organization``."""
    public = public_properties(props)
    del public["organization"]
    text = orjson.dumps({"type": "Feature", "id": public["id"],
                         "geometry": {"type": "Point", "coordinates": [lon, lat]},
                         "properties": public}).decode()
    return text[:-2] + _HEAD_END


def stored_feature(props: Mapping[str, Any], lon: float, lat: float) -> str:
    """What ``resource.feature`` holds for a resource with public fields ``props``: its
    GeoJSON Feature without ``distance_m``, properties last and ``organization`` last in
    them, so a distance can be spliced in before the final ``}}``."""
    return (feature_head(props, lon, lat) + orjson.dumps(props.get("organization")).decode()
            + "}}")


def unpack_feature(text: str | bytes) -> tuple[dict[str, Any], float, float]:
    """The public fields (the store's form: ``uid``, dates as dates) and the point of a
    stored feature; the inverse of :func:`stored_feature` up to sub-second times."""
    doc = orjson.loads(text)
    props = doc["properties"]
    props["uid"] = props.pop("id")
    props.pop("location_precision", None)
    if props.get("updated_at"):
        props["updated_at"] = dt.datetime.fromisoformat(props["updated_at"])
    if props.get("last_verified"):
        props["last_verified"] = dt.date.fromisoformat(props["last_verified"])
    lon, lat = doc["geometry"]["coordinates"]
    return props, lon, lat


def feature_bytes(hit: Hit) -> bytes:
    """The serialised Feature of ``hit`` as UTF-8 (with ``distance_m`` when it has one): the
    stored bytes as the store read them, or built from the columns where it had none."""
    data = hit.fragment
    if data is None:
        data = stored_feature(hit.properties, hit.lon, hit.lat)
    if isinstance(data, str):
        data = data.encode()
    if hit.distance_m is not None:
        data = b"%s,\"distance_m\":%s}}" % (data[:-2], repr(float(hit.distance_m)).encode())
    return data


def feature_text(hit: Hit) -> str:
    """:func:`feature_bytes` as text."""
    return feature_bytes(hit).decode()


def properties(hit: Hit) -> dict[str, Any]:
    """The public properties of ``hit`` (as in its Feature)."""
    if hit.fragment is not None:
        props = orjson.loads(hit.fragment)["properties"]
    else:
        props = public_properties(hit.properties)
    if hit.distance_m is not None:
        props["distance_m"] = hit.distance_m
    return props


def feature(hit: Hit) -> dict[str, Any]:
    return orjson.loads(feature_bytes(hit))


def feature_collection(hits: Iterable[Hit], **members: Any) -> bytes:
    """A serialised FeatureCollection of ``hits`` with the extra top-level ``members``: the
    features' stored texts joined, nothing parsed or rebuilt (budget: 300k features/s)."""
    body = b",".join([feature_bytes(hit) for hit in hits])
    tail = orjson.dumps(members, option=orjson.OPT_NON_STR_KEYS)[1:] if members else b"}"
    sep = b"," if members else b""
    return b"".join((b'{"type":"FeatureCollection","features":[', body, b"]", sep, tail))


_FORMULA = ("=", "+", "-", "@")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ";".join(map(str, value))
    if isinstance(value, dict):
        return ""
    if isinstance(value, str) and (value[:1] in ("=", "+", "-", "@", "\t", "\r")
                                   or (value[:1] == "'" and value[1:2] in _FORMULA)):
        # a spreadsheet must not run a cell as a formula; a text that starts with the guard
        # itself ("'=Treff'") gets one more, so that the import's removal of one is exact
        return "'" + value
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
