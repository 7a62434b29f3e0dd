"""District boundaries: Stadtteil and Bezirk polygons, and point-in-polygon for resources.

``mapservice import-boundaries PATH`` loads the polygons of a vector file into ``district``
(replacing that level), then sets every resource's ``stadtteil``/``bezirk`` in one UPDATE
(:meth:`Store.assign_districts`). From then on :func:`derive` gives each imported record the
same values before the upsert compares, so a re-import changes nothing.

One rule on both paths: a point inside a Stadtteil polygon takes that Stadtteil and its Bezirk
(the Stadtteil layer carries it - Hamburg's Bezirk layer leaves out Neuwerk); a point inside
only a Bezirk polygon takes that Bezirk; a point outside every polygon keeps what it has. The
lowest district id wins on a shared edge. Confidential resources are placed by their exact
point, never by the approximate one the public sees.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import shapely
from sqlalchemy import func, inspect, select

from mapservice.geocode import name_key
from mapservice.models import DISTRICT_LEVELS, District
from mapservice.store import Store

from .csv_reader import load_mapping, text_value
from .pipeline import ImportFailed, Problem, Where
from .validate import text_problem
from .vector import read_layers, to_wgs84

LEVELS = (*DISTRICT_LEVELS, "auto")


@dataclass
class BoundariesReport:
    loaded: dict[str, int] = field(default_factory=dict)  # level -> polygons
    assigned: int = 0  # resources whose stadtteil/bezirk changed
    warnings: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        lines = [", ".join(f"{n} {level} polygon(s)" for level, n in self.loaded.items())
                 + f" loaded; stadtteil/bezirk changed on {self.assigned} resource(s)"]
        lines += [f"  {p}" for p in self.warnings[:100]]
        return "\n".join(lines)


def _multipolygon(geom: Any) -> shapely.MultiPolygon | None:
    parts = shapely.get_parts(geom)
    polygons = [p for p in parts if isinstance(p, shapely.Polygon) and not p.is_empty]
    polygons += [q for p in parts if isinstance(p, shapely.MultiPolygon) for q in p.geoms]
    return shapely.MultiPolygon(polygons) if polygons else None


def read_boundaries(path: Path, level: str = "auto", crs: str | None = None, *,
                    region: tuple[float, float, float, float] | None = None
                    ) -> tuple[dict[str, list[dict[str, Any]]], list[Problem]]:
    """The districts in ``path`` by level, as rows for ``district``, and warnings. Every bad
    feature is collected; any problem raises :class:`ImportFailed` before anything is
    written. With ``region`` (minlon, minlat, maxlon, maxlat: the service's region), a
    polygon entirely outside it is a problem: a wrong or missing CRS would otherwise replace
    every district with shapes somewhere else."""
    if level not in LEVELS:
        raise ImportFailed([Problem(Where(str(path), field="level"),
                                    f"level must be one of {', '.join(LEVELS)}")])
    mapping = load_mapping()
    rows: dict[str, list[dict[str, Any]]] = {}
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for layer in read_layers(path):
        geometries = to_wgs84(layer.geometries, layer.crs, crs, layer.file)
        columns = mapping.resolve(layer.fields).fields
        if "name" not in columns:
            raise ImportFailed([Problem(Where(layer.file, field="name"), "no name attribute; "
                                        f"the attributes are {', '.join(layer.fields)}")])
        layer_level = level
        if level == "auto":  # a Stadtteil layer names the Bezirk of each polygon
            layer_level = "stadtteil" if "bezirk" in columns else "bezirk"
        seen: dict[str, Where] = {}
        for index, geom in enumerate(geometries):
            where = Where(layer.file, index + 1, "feature")
            attrs = layer.row(index)
            name = text_value(attrs.get(columns["name"]))
            code = text_value(attrs.get(columns["source_id"])) if "source_id" in columns \
                else None
            code = code or name
            if not name:
                problems.append(Problem(where.at(columns["name"]), "no name"))
                continue
            if code in seen:
                problems.append(Problem(where.at(columns.get("source_id", "name")),
                                        f"{code!r} also at {seen[code]}"))
                continue
            seen[code] = where
            if geom is None or shapely.is_empty(geom):
                problems.append(Problem(where, "no geometry"))
                continue
            if not np.isfinite(shapely.get_coordinates(geom)).all():
                problems.append(Problem(where, "coordinates that are not numbers (NaN or "
                                        "Infinity)"))
                continue
            if not shapely.is_valid(geom):
                geom = shapely.make_valid(geom)
                warnings.append(Problem(where, "invalid polygon repaired (make_valid)"))
            polygon = _multipolygon(shapely.force_2d(geom))
            if polygon is None:
                problems.append(Problem(where, f"a {geom.geom_type}, not a polygon"))
                continue
            if region is not None and not polygon.intersects(shapely.box(*region)):
                x0, y0, x1, y1 = polygon.bounds
                problems.append(Problem(where, f"lies outside the service region "
                                        f"({x0:.4f}, {y0:.4f} to {x1:.4f}, {y1:.4f} in lon/lat):"
                                        " does the file declare the wrong CRS? (--crs)"))
                continue
            row = {"level": layer_level, "code": code, "name": name,
                   "bezirk": (text_value(attrs.get(columns["bezirk"])) if "bezirk" in columns
                              else None) if layer_level == "stadtteil" else name}
            header = {"code": columns.get("source_id", columns["name"]),
                      "name": columns["name"], "bezirk": columns.get("bezirk", "bezirk")}
            bad = [Problem(where.at(header[field]), problem) for field, problem in
                   ((f, text_problem(row[f], District.__table__.c[f])) for f in header
                    if row[f] is not None) if problem]
            if bad:
                problems.extend(bad)
                continue
            rows.setdefault(layer_level, []).append(
                {**row, "geom": f"SRID=4326;{polygon.wkt}"})
    if problems:
        raise ImportFailed(problems)
    if not rows:
        raise ImportFailed([Problem(Where(str(path)), "no polygons found")])
    return rows, warnings


def load_boundaries(store: Store, path: Path, level: str = "auto",
                    crs: str | None = None, *,
                    region: tuple[float, float, float, float] | None = None
                    ) -> BoundariesReport:
    """Replace the districts of each level found in ``path``, then re-derive every
    resource's Stadtteil and Bezirk (``region``: see :func:`read_boundaries`)."""
    rows, warnings = read_boundaries(Path(path), level, crs, region=region)
    report = BoundariesReport(warnings=warnings)
    with store.transaction() as conn:  # polygons and the resources' districts together
        report.loaded.update(store.replace_districts(rows, conn=conn))
        report.assigned = store.assign_districts(conn=conn)
    return report


@dataclass
class _Level:
    tree: shapely.STRtree
    names: list[str]
    bezirke: list[str | None]

    def first(self, points: np.ndarray) -> np.ndarray:
        """For each point, the index of the lowest-id polygon that holds it, else -1."""
        found = np.full(len(points), -1)
        hits, polygons = self.tree.query(points, predicate="intersects")
        if len(hits):
            order = np.lexsort((polygons, hits))
            unique, first = np.unique(hits[order], return_index=True)
            found[unique] = polygons[order][first]
        return found


def district_levels(store: Store) -> dict[str, _Level] | None:
    """The loaded district polygons by level, indexed for :func:`derive`; None before any
    are loaded."""
    if not inspect(store.engine).has_table("district"):
        return None
    stmt = (select(District.level, District.name, District.bezirk,
                   func.ST_AsBinary(District.geom)).order_by(District.id))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        return None
    levels: dict[str, _Level] = {}
    for lvl in DISTRICT_LEVELS:
        mine = [r for r in rows if r[0] == lvl]
        if mine:
            geoms = shapely.from_wkb([bytes(r[3]) for r in mine])
            levels[lvl] = _Level(shapely.STRtree(geoms), [r[1] for r in mine],
                                 [r[2] for r in mine])
    return levels


_UNREAD: Any = object()


def derive(store: Store, records: Sequence[dict[str, Any]], wheres: Sequence[Where],
           levels: dict[str, _Level] | None = _UNREAD) -> list[Problem]:
    """Set ``stadtteil``/``bezirk`` of ``records`` (validated, lon/lat set) in place by
    point-in-polygon, by the rule of :meth:`Store.assign_districts`; warn where the file said
    otherwise and where a point lies outside every polygon. Does nothing before boundaries are
    loaded. ``levels``: :func:`district_levels` read once for records given in batches."""
    if not records:
        return []
    if levels is _UNREAD:
        levels = district_levels(store)
    if not levels:
        return []
    # The store keeps 7 decimals: test the very point it will hold.
    points = shapely.points(np.round([[float(r["lon"]), float(r["lat"])] for r in records], 7))
    stadtteil = levels.get("stadtteil")
    bezirk = levels.get("bezirk")
    st_index = stadtteil.first(points) if stadtteil else np.full(len(points), -1)
    bz_index = bezirk.first(points) if bezirk else np.full(len(points), -1)
    warnings = []
    for i, rec in enumerate(records):
        derived: dict[str, str | None] = {"stadtteil": None, "bezirk": None}
        if stadtteil and st_index[i] >= 0:
            derived["stadtteil"] = stadtteil.names[st_index[i]]
            derived["bezirk"] = stadtteil.bezirke[st_index[i]]
        if derived["bezirk"] is None and bezirk and bz_index[i] >= 0:
            derived["bezirk"] = bezirk.names[bz_index[i]]
        if derived["stadtteil"] is None and derived["bezirk"] is None:
            warnings.append(Problem(wheres[i].at("lat/lon"), f"point ({rec['lat']}, "
                                    f"{rec['lon']}) lies outside every district polygon "
                                    "(outside the city?)"))
            continue
        for key, value in derived.items():
            if value is None:
                continue
            given = rec.get(key)
            if given and name_key(str(given)) != name_key(value):
                warnings.append(Problem(wheres[i].at(key), f"the file says {given!r}, the point "
                                        f"lies in {value!r}; stored {value!r}"))
            rec[key] = value
    return warnings
