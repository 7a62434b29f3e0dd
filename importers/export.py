"""``mapservice export``: every published resource as GeoJSON or CSV that imports back.

The rows come from ``Store.search`` - the one search path, so an export shows exactly what the
public API shows: a confidential resource has its approximate point and no address. Each row
carries every field the importers read (``id`` is the resource's public id and becomes the
source id on re-import), in the same shape as the API (:mod:`mapservice.geojson`).
"""
from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import IO, Any, Iterator

import orjson

from mapservice.errors import MapserviceError
from mapservice.geojson import _csv_cell, feature_bytes, properties
from mapservice.search import SearchQuery
from mapservice.store import Hit, Store

FORMATS = ("geojson", "csv", "hsds")
PAGE_SIZE = 5000
#: The organisation's own fields beside its name (the public ones, as HSDS shows them).
ORG_DETAILS = ("description", "website", "email", "phone")
CSV_FIELDS = ("id", "name", "lat", "lon", "categories", "audiences", "languages", "cost",
              "wheelchair", "opening_hours", "address", "postcode", "stadtteil", "bezirk",
              "phone", "email", "website", "organization",
              *(f"organization_{d}" for d in ORG_DETAILS), "location_confidential",
              "last_verified", "description", "translations", "updated_at", "source")
_CHUNK = 1000  # hits whose organisations are read at once


def published(store: Store, source: str | None = None) -> Iterator[Hit]:
    """Every published resource (of ``source``), page by page in a stable order, all pages
    read from one snapshot of the database (an import running meanwhile changes none of
    them)."""
    with store.one_snapshot():
        offset: int | None = 0
        while offset is not None:
            result = store.search(SearchQuery(limit=PAGE_SIZE, offset=offset))
            for hit in result.hits:
                if source is None or hit.properties.get("source") == source:
                    yield hit
            offset = result.next_offset


@contextmanager
def replacing(out: Path) -> Iterator[IO[bytes]]:
    """A file that becomes ``out`` only when the block ends without an error: a failed or
    interrupted export leaves the previous file as it was, and no half file (a CSV cut
    after a row reads as a complete one). The new file keeps the previous file's mode, or
    gets a new file's (the umask's)."""
    out = Path(out)
    if out.is_dir():
        raise MapserviceError(f"{out}: is a directory; name the file to write")
    if not out.parent.is_dir():
        raise MapserviceError(f"{out.parent}: no such directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    try:
        try:
            mode = stat.S_IMODE(out.stat().st_mode)
        except FileNotFoundError:
            umask = os.umask(0o022)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def with_organizations(store: Store, source: str | None, chunk_size: int = _CHUNK
                       ) -> Iterator[tuple[Hit, dict[str, Any] | None]]:
    """Every published resource (:func:`published`) with its organisation (uid, name,
    description, website, e-mail, phone; None without one; the hits carry only its name),
    read per chunk of ``chunk_size``."""
    hits = published(store, source)
    while chunk := list(islice(hits, chunk_size)):
        orgs = store.organizations_of([hit.properties["uid"] for hit in chunk])
        for hit in chunk:
            yield hit, orgs.get(hit.properties["uid"])


def _org_details(org: dict[str, Any] | None) -> dict[str, Any]:
    """``organization_website``, ... of ``org`` that it has: the CSV and GeoJSON fields."""
    return {f"organization_{d}": org[d] for d in ORG_DETAILS if org and org.get(d)}


def write_geojson(store: Store, out: IO[bytes], source: str | None = None) -> int:
    """Stream a FeatureCollection (with the sources' licences) to ``out``; returns the count."""
    sources = store.sources_in_use()
    if source is not None:
        sources = [s for s in sources if s["name"] == source]
    out.write(b'{"type":"FeatureCollection","sources":' + orjson.dumps(sources)
              + b',"features":[\n')
    count = 0
    for hit, org in with_organizations(store, source):
        details = _org_details(org)
        feature = feature_bytes(hit)
        if details:  # the stored Feature has the organisation's name only
            parsed = orjson.loads(feature)
            parsed["properties"].update(details)
            feature = orjson.dumps(parsed)
        out.write((b",\n" if count else b"") + feature)
        count += 1
    out.write(b"\n]}\n")
    return count


def _csv_row(hit: Hit, details: dict[str, Any]) -> dict[str, Any]:
    row = properties(hit)
    row.update(details, lat=hit.lat, lon=hit.lon,
               translations=orjson.dumps(row.get("translations") or {}).decode())
    return {name: _csv_cell(row.get(name)) for name in CSV_FIELDS}


def write_csv(store: Store, out: IO[bytes], source: str | None = None) -> int:
    """Stream UTF-8 CSV (lists joined with ``;``, translations as JSON) to ``out``."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS)
    writer.writeheader()
    count = 0
    for hit, org in with_organizations(store, source):
        writer.writerow(_csv_row(hit, _org_details(org)))
        count += 1
    text.flush()
    text.detach()
    return count


def export(store: Store, fmt: str, out: Path, source: str | None = None) -> int:
    """Write ``store``'s published resources to ``out`` in ``fmt``; returns how many (HSDS:
    what its exporter returns)."""
    if fmt == "hsds":
        from importers.hsds import export_hsds

        return export_hsds(store, out, source=source)
    writers = {"geojson": write_geojson, "csv": write_csv}
    if fmt not in writers:
        raise MapserviceError(f"unknown export format {fmt!r}; use {', '.join(FORMATS)}")
    with replacing(out) as fh:
        return writers[fmt](store, fh, source)
