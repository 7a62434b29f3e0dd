"""The query the whole app uses: get, search, upsert, history.

Dialect differences are small hooks overridden in ``postgis.py`` and ``spatialite.py`` (compare
pygeoapi's ``GenericSQLProvider``): how to match a list of codes, how to measure metres, how to
find the radius that holds the k nearest, and how to use the spatial index for a window.

Nearest-k is exact in metres on both backends: a dialect hook finds a radius that surely holds
the k nearest matches (PostGIS: KNN ``<->`` on the GiST index; SpatiaLite: a widening R*Tree
window), then one shared query reads that window through the spatial index and orders by the
ellipsoidal distance.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from geoalchemy2 import Geometry
from sqlalchemy import (ColumnElement, Select, and_, case, func, literal, null, select, true,
                        type_coerce)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..models import Organization, Resource, ResourceVersion, Source
from ..search import SearchQuery

METRES_PER_DEG_LAT = 111_320.0
# Confidential places are shown as the centre of a grid cell of about 1.1 km x 1.0 km. The cell
# is fixed, so repeated queries cannot be averaged to the true point.
CONFIDENTIAL_CELL_DEG = (0.015, 0.01)  # lon, lat

# The fields an import or an edit may set; a version is written only when one of them changes.
CONTENT_FIELDS: tuple[str, ...] = (
    "name", "description", "translations", "categories", "audiences", "languages", "cost",
    "wheelchair", "opening_hours", "address", "postcode", "stadtteil", "bezirk", "lat", "lon",
    "phone", "email", "website", "organization", "location_confidential", "status",
    "last_verified",
)
_DEFAULTS: dict[str, Any] = {
    "translations": {}, "categories": [], "audiences": [], "languages": [], "cost": "unknown",
    "wheelchair": "unknown", "location_confidential": False, "status": "published",
}


@dataclass
class Hit:
    """One search result: public fields only, ``distance_m`` when the query had ``near``."""

    properties: dict[str, Any]
    lon: float
    lat: float
    distance_m: float | None = None


@dataclass
class SearchResult:
    hits: list[Hit]
    next_offset: int | None


@dataclass
class UpsertReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    archived: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "archived": self.archived, "conflicts": self.conflicts}


def slugify(text: str) -> str:
    ascii_text = (unicodedata.normalize("NFKD", text.replace("ß", "ss"))
                  .encode("ascii", "ignore").decode())
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", ascii_text).strip("-").lower()
    return slug[:120] or "resource"


def approximate(lon: float, lat: float) -> tuple[float, float]:
    """Centre of the fixed grid cell that holds (lon, lat): the only point shown for a
    confidential location."""
    dlon, dlat = CONFIDENTIAL_CELL_DEG
    return (round((math.floor(lon / dlon) + 0.5) * dlon, 6),
            round((math.floor(lat / dlat) + 0.5) * dlat, 6))


def window(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """A lon/lat box that holds every point within ``radius_m`` of (lat, lon)."""
    dlat = radius_m / METRES_PER_DEG_LAT * 1.01  # 1 % margin for the ellipsoid
    coslat = max(math.cos(math.radians(min(abs(lat) + dlat, 89.9))), 1e-6)
    dlon = min(radius_m / (METRES_PER_DEG_LAT * coslat) * 1.01, 180.0)
    return (max(lon - dlon, -180.0), max(lat - dlat, -90.0),
            min(lon + dlon, 180.0), min(lat + dlat, 90.0))


def _point(lon: float, lat: float) -> ColumnElement:
    return type_coerce(func.ST_GeomFromText(f"POINT({lon!r} {lat!r})", 4326),
                       Geometry("POINT", srid=4326))


class Store:
    """Backend-neutral storage. Subclasses override the ``_hooks`` only."""

    backend = "generic"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    # ---- dialect hooks -------------------------------------------------------------------
    def _codes_overlap(self, column: Any, codes: Sequence[str]) -> ColumnElement:
        raise NotImplementedError

    def _distance_m(self, lon: float, lat: float) -> ColumnElement:
        raise NotImplementedError

    def _index_window(self, box: tuple[float, float, float, float]) -> ColumnElement:
        """A predicate that reads ``box`` through the spatial index (may over-match)."""
        raise NotImplementedError

    def _knn_radius(self, conn: Any, lat: float, lon: float, k: int,
                    where: list[ColumnElement]) -> float | None:
        """A radius (m) around (lat, lon) that holds at least the k nearest matches of
        ``where``, or None when nothing matches."""
        raise NotImplementedError

    # ---- public reading --------------------------------------------------------------------
    def _public_columns(self) -> list[Any]:
        r = Resource
        hidden = r.location_confidential
        return [
            r.uid, r.slug, r.name, r.description, r.translations, r.categories, r.audiences,
            r.languages, r.cost, r.wheelchair, r.opening_hours,
            case((hidden, null()), else_=r.address).label("address"),
            r.postcode, r.stadtteil, r.bezirk, r.phone, r.email, r.website,
            r.location_confidential, r.last_verified, r.updated_at, r.source, r.status,
            Organization.name.label("organization"),
            func.ST_X(r.geom).label("lon"), func.ST_Y(r.geom).label("lat"),
        ]

    def _exact_box(self, box: tuple[float, float, float, float]) -> list[ColumnElement]:
        # The index compares float4-rounded boxes and over-matches near the edges; this is
        # the exact re-check (SETUP-NOTES: 32 of 170 PostGIS queries over-matched without it).
        minlon, minlat, maxlon, maxlat = box
        x, y = func.ST_X(Resource.geom), func.ST_Y(Resource.geom)
        return [self._index_window(box), x >= minlon, x <= maxlon, y >= minlat, y <= maxlat]

    def _filters(self, query: SearchQuery) -> list[ColumnElement]:
        r = Resource
        where: list[ColumnElement] = [r.status.in_(query.statuses)]
        if query.categories:
            where.append(self._codes_overlap(r.categories, query.categories))
        if query.audiences:
            where.append(self._codes_overlap(r.audiences, query.audiences))
        if query.languages:
            where.append(self._codes_overlap(r.languages, query.languages))
        if query.cost:
            where.append(r.cost.in_(query.cost))
        if query.wheelchair:
            where.append(r.wheelchair.in_(query.wheelchair))
        if query.bbox:
            where.extend(self._exact_box(query.bbox))
        return where

    def search(self, query: SearchQuery) -> SearchResult:
        """Run ``query``; the one search path for API, map, list and exports."""
        where = self._filters(query)
        stmt: Select = (select(*self._public_columns())
                        .outerjoin(Organization, Organization.id == Resource.organization_id))
        distance = None
        with self.engine.connect() as conn:
            if query.near is not None:
                lat, lon = query.near
                radius = query.radius
                if radius is None:
                    radius = self._knn_radius(conn, lat, lon, query.offset + query.limit + 1,
                                              where)
                    if radius is None:
                        return SearchResult([], None)
                distance = self._distance_m(lon, lat)
                where = [*where, *self._exact_box(window(lat, lon, radius))]
                if query.radius is not None:
                    where.append(distance <= query.radius)
                stmt = stmt.add_columns(distance.label("distance_m"))
            stmt = stmt.where(and_(true(), *where))
            stmt = stmt.order_by(*self._order(query, distance))
            stmt = stmt.limit(query.limit + 1).offset(query.offset)
            rows = conn.execute(stmt).mappings().all()
        more = len(rows) > query.limit
        hits = [self._hit(row) for row in rows[:query.limit]]
        return SearchResult(hits, query.offset + query.limit if more else None)

    def _order(self, query: SearchQuery, distance: ColumnElement | None) -> list[Any]:
        sort = query.effective_sort
        if sort == "distance" and distance is not None:
            return [distance, Resource.id]
        if sort == "name":
            return [Resource.name, Resource.id]
        if sort == "verified":
            return [Resource.last_verified.desc().nulls_last(), Resource.id]
        return [Resource.id]

    @staticmethod
    def _hit(row: Mapping[str, Any]) -> Hit:
        props = dict(row)
        lon, lat = props.pop("lon"), props.pop("lat")
        distance = props.pop("distance_m", None)
        props.pop("status", None)
        return Hit(props, lon, lat, None if distance is None else round(float(distance), 1))

    def get(self, uid: str, *, statuses: Iterable[str] = ("published",)) -> Hit | None:
        stmt = (select(*self._public_columns())
                .outerjoin(Organization, Organization.id == Resource.organization_id)
                .where(Resource.uid == uid, Resource.status.in_(tuple(statuses))))
        with self.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return self._hit(row) if row else None

    def count(self, statuses: Iterable[str] = ("published",)) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Resource)
                                .where(Resource.status.in_(tuple(statuses)))).scalar_one()

    def sources_in_use(self) -> list[dict[str, Any]]:
        """Sources of published resources, with their licence and attribution."""
        stmt = (select(Source.name, Source.licence, Source.attribution, Source.url)
                .where(Source.name.in_(select(Resource.source).where(
                    Resource.status == "published").distinct()))
                .order_by(Source.name))
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def history(self, uid: str) -> list[dict[str, Any]]:
        with self.session() as session:
            resource = session.scalar(select(Resource).where(Resource.uid == uid))
            if resource is None:
                return []
            return [{"version": v.version, "changed_by": v.changed_by,
                     "changed_at": v.changed_at, "diff": v.diff, "data": v.data}
                    for v in resource.versions]

    # ---- writing ---------------------------------------------------------------------------
    def register_source(self, name: str, *, licence: str | None = None,
                        attribution: str | None = None, url: str | None = None) -> None:
        with self.session() as session, session.begin():
            source = session.scalar(select(Source).where(Source.name == name))
            if source is None:
                source = Source(name=name)
                session.add(source)
            source.licence, source.attribution, source.url = licence, attribution, url
            source.imported_at = dt.datetime.now(dt.timezone.utc)

    def upsert(self, records: Iterable[Mapping[str, Any]], *, source: str,
               changed_by: str) -> UpsertReport:
        """Insert or update resources keyed by (source, ``source_id``), in one transaction.

        A record is a mapping with ``source_id`` and any of :data:`CONTENT_FIELDS`
        (``organization`` is a mapping with at least ``name``). A version is written only when
        a field changed; fields a moderator locked keep their value and are reported as
        conflicts. This is the ORM path for small batches; bulk imports use the dialect's
        bulk loader.
        """
        report = UpsertReport()
        records = list(records)
        with self.session() as session, session.begin():
            ids = [str(rec["source_id"]) for rec in records]
            existing = {res.source_id: res for res in session.scalars(
                select(Resource).where(Resource.source == source, Resource.source_id.in_(ids)))}
            orgs: dict[str, Organization] = {}
            for rec in records:
                data = self._normalise(rec)
                org = self._organization(session, source, rec.get("organization"), orgs)
                data["organization"] = org.name if org else None
                res = existing.get(str(rec["source_id"]))
                if res is None:
                    res = Resource(source=source, source_id=str(rec["source_id"]), version=1,
                                   locked_fields=[])
                    self._apply(res, data, org)
                    session.add(res)
                    session.flush()
                    session.add(ResourceVersion(resource_id=res.id, version=1,
                                                changed_by=changed_by, data=_jsonable(data),
                                                diff={}))
                    report.created += 1
                    continue
                before = self.snapshot(res)
                locked = set(res.locked_fields or [])
                diff = {}
                for name in CONTENT_FIELDS:
                    if _same(before.get(name), data.get(name)):
                        continue
                    if name in locked:
                        report.conflicts.append({"source_id": res.source_id, "field": name,
                                                 "kept": _jsonable(before.get(name)),
                                                 "incoming": _jsonable(data.get(name))})
                        data[name] = before.get(name)
                        continue
                    diff[name] = [_jsonable(before.get(name)), _jsonable(data.get(name))]
                if not diff:
                    report.unchanged += 1
                    continue
                self._apply(res, data, org)
                res.version += 1
                res.updated_at = dt.datetime.now(dt.timezone.utc)
                session.add(ResourceVersion(resource_id=res.id, version=res.version,
                                            changed_by=changed_by, data=_jsonable(data),
                                            diff=diff))
                report.updated += 1
        return report

    def archive_missing(self, source: str, keep_ids: Iterable[str], *, changed_by: str) -> int:
        """Archive (never delete) published resources of ``source`` not in ``keep_ids``."""
        keep = set(map(str, keep_ids))
        archived = 0
        with self.session() as session, session.begin():
            for res in session.scalars(select(Resource).where(
                    Resource.source == source, Resource.status != "archived")):
                if res.source_id in keep:
                    continue
                before = res.status
                res.status = "archived"
                res.version += 1
                res.updated_at = dt.datetime.now(dt.timezone.utc)
                session.add(ResourceVersion(resource_id=res.id, version=res.version,
                                            changed_by=changed_by,
                                            data=_jsonable(self.snapshot(res)),
                                            diff={"status": [before, "archived"]}))
                archived += 1
        return archived

    @staticmethod
    def _normalise(rec: Mapping[str, Any]) -> dict[str, Any]:
        data = {name: rec.get(name, _DEFAULTS.get(name)) for name in CONTENT_FIELDS}
        for name in ("categories", "audiences", "languages"):
            data[name] = list(dict.fromkeys(data[name] or []))
        data["translations"] = dict(data["translations"] or {})
        data["lat"], data["lon"] = round(float(rec["lat"]), 7), round(float(rec["lon"]), 7)
        if isinstance(data["last_verified"], str):
            data["last_verified"] = dt.date.fromisoformat(data["last_verified"])
        data["location_confidential"] = bool(data["location_confidential"])
        return data

    @staticmethod
    def _organization(session: Session, source: str, org: Mapping[str, Any] | None,
                      cache: dict[str, Organization]) -> Organization | None:
        if not org or not org.get("name"):
            return None
        key = str(org.get("source_id") or org["name"])
        if key in cache:
            return cache[key]
        found = session.scalar(select(Organization).where(Organization.source == source,
                                                          Organization.source_id == key))
        if found is None:
            found = Organization(source=source, source_id=key, name=org["name"])
            session.add(found)
        for name in ("name", "description", "website", "email", "phone"):
            if org.get(name) is not None:
                setattr(found, name, org[name])
        session.flush()
        cache[key] = found
        return found

    @staticmethod
    def snapshot(res: Resource) -> dict[str, Any]:
        """The content fields of a stored resource, in the form :meth:`upsert` compares."""
        if res.location_confidential and res.exact_lat is not None:
            lat, lon = res.exact_lat, res.exact_lon
        else:
            lat, lon = _point_of(res)
        data = {name: getattr(res, name) for name in CONTENT_FIELDS
                if name not in ("lat", "lon", "organization")}
        data.update(lat=lat, lon=lon,
                    organization=res.organization.name if res.organization else None)
        return data

    @staticmethod
    def _apply(res: Resource, data: Mapping[str, Any], org: Organization | None) -> None:
        for name in CONTENT_FIELDS:
            if name in ("lat", "lon", "organization"):
                continue
            setattr(res, name, data[name])
        res.slug = slugify(data["name"])
        res.organization = org
        lon, lat = data["lon"], data["lat"]
        if data["location_confidential"]:
            res.exact_lat, res.exact_lon = lat, lon
            lon, lat = approximate(lon, lat)
        else:
            res.exact_lat = res.exact_lon = None
        res.geom = f"SRID=4326;POINT({lon!r} {lat!r})"


def _point_of(res: Resource) -> tuple[float | None, float | None]:
    geom = res.geom
    if geom is None:
        return None, None
    if isinstance(geom, str):
        match = re.search(r"POINT\s*\(([-\d.eE]+) ([-\d.eE]+)\)", geom)
        return (round(float(match.group(2)), 7), round(float(match.group(1)), 7))
    from geoalchemy2.shape import to_shape

    point = to_shape(geom)
    return round(point.y, 7), round(point.x, 7)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) < 1e-7
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


__all__ = ["Store", "Hit", "SearchResult", "UpsertReport", "CONTENT_FIELDS", "approximate",
           "window", "slugify", "literal"]
