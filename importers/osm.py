"""OpenStreetMap: ``.osm``/``.osm.gz``/``.osm.bz2``/``.osm.pbf`` files (pyosmium) and Overpass
API JSON, mapped onto resources by the tag table ``data/mappings/osm_tags.yaml``.

Both formats share everything after reading: an element becomes a resource only when its tags
match a rule of the table (everything else — benches, roads, 99 % of a file — is skipped
silently and only counted in a debug log line); areas (closed ways, multipolygon relations)
and other relations are reduced to one point that lies *inside* them (``point_on_surface``:
a centroid can fall outside a U-shaped building or into a courtyard); the source id is the OSM
type and id (``node/123``, ``way/456``, ``relation/789``) so a re-import updates in place.

The OSM file is read streaming with pyosmium's C++ filters, so a whole city extract never
reaches Python: one pass hands over the elements that carry a mapped key while every node
location goes into pyosmium's location index; a second pass, only when a matching relation
exists, reads its member ways by id. Python sees matching elements and relation members only.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import orjson
import osmium
import shapely
import yaml
from pyproj import Geod
from shapely.geometry import GeometryCollection, LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import polygonize, unary_union

from mapservice.models import COSTS, WHEELCHAIR
from mapservice.paths import DATA_DIR
from mapservice.taxonomy import default as taxonomy

from . import validate as _validate
from .pipeline import Candidate, ImportFailed, ImportOptions, Problem, Where, register

log = logging.getLogger(__name__)

MAPPING_FILE = DATA_DIR / "mappings" / "osm_tags.yaml"

#: Model fields a mapping may fill from tags (``fields:`` in the table).
MAPPABLE_FIELDS = ("name", "description", "opening_hours", "website", "phone", "email",
                   "postcode", "organization", "last_verified")
#: Fields whose value is a single item: only the first of several ";"-separated values is kept.
_FIRST_VALUE_ONLY = ("website", "phone", "email", "postcode", "last_verified")
#: A node and an area (or two elements) with the same name closer than this are reported as a
#: possible duplicate: the same place mapped twice (POI node + building) is common in OSM.
DUPLICATE_DISTANCE_M = 100.0
#: Relation types whose members form an area.
_AREA_RELATIONS = ("multipolygon", "boundary")
_GEOD = Geod(ellps="WGS84")


# ---- the tag table ----------------------------------------------------------------------------
Conditions = tuple[tuple[str, "frozenset[str] | None"], ...]  # None: key present, not "no"


def _text(value: Any) -> str:
    """A tag value from YAML as OSM spells it: YAML 1.1 reads bare yes/no as booleans."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _parts(value: str) -> list[str]:
    """The values of an OSM multi-value tag (``a;b``)."""
    return [part.strip() for part in value.split(";") if part.strip()]


def _holds(conditions: Conditions, tags: Mapping[str, str]) -> bool:
    for key, wanted in conditions:
        value = tags.get(key)
        if value is None:
            return False
        parts = _parts(value) if ";" in value else [value.strip()]  # most are single values
        if wanted is None:
            if parts in ([], [""], ["no"]):
                return False
        elif wanted.isdisjoint(parts):
            return False
    return True


@dataclass(frozen=True)
class Codes:
    """Taxonomy codes a rule or a tag value adds to a resource."""

    categories: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    confidential: bool = False


@dataclass(frozen=True)
class Rule:
    when: Conditions
    codes: Codes


class MappingError(ValueError):
    """The tag table itself is wrong (raised while loading it, before any data is read)."""


@dataclass(frozen=True)
class TagMapping:
    """The tag table of ``data/mappings/osm_tags.yaml`` (see the comments there), checked."""

    rules: tuple[Rule, ...]  # most specific first
    exclude: tuple[Conditions, ...]
    value_maps: dict[str, dict[str, Codes]]
    fields: dict[str, tuple[str, ...]]
    street: tuple[str, ...]
    housenumber: tuple[str, ...]
    translations: dict[str, tuple[str, str]]  # OSM key ("name:en") -> (field, language)
    wheelchair: tuple[str, dict[str, str]]
    cost: tuple[str, dict[str, str]]
    language_prefix: str
    language_offered: frozenset[str]
    invalid_opening_hours: str  # "drop" | "reject"

    @property
    def filter_keys(self) -> tuple[str, ...]:
        """Keys of which an element must have one to match any rule (a C++ pre-filter)."""
        return tuple(dict.fromkeys(rule.when[0][0] for rule in self.rules))

    @classmethod
    def load(cls, path: Path | None = None) -> TagMapping:
        """Read and check a tag table; :class:`MappingError` says what is wrong."""
        path = path or MAPPING_FILE
        try:
            raw = yaml.load(Path(path).read_text(encoding="utf-8"),  # noqa: S506 - safe
                            Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise MappingError(f"cannot read the tag mapping: {exc}") from None
        if not isinstance(raw, dict):
            raise MappingError("the tag mapping must be a YAML mapping with 'resources'")
        tax = taxonomy()

        def codes(entry: Any, where: str) -> Codes:
            if not isinstance(entry, dict):
                raise MappingError(f"{where}: expected a mapping, got {entry!r}")
            out = {}
            for kind, allowed in (("categories", tax.categories), ("audiences", tax.audiences)):
                values = entry.get(kind) or []
                if not isinstance(values, list):
                    raise MappingError(f"{where}: '{kind}' must be a list")
                unknown = [v for v in values if v not in allowed]
                if unknown:
                    raise MappingError(f"{where}: unknown {kind} code(s) "
                                       f"{', '.join(map(str, unknown))} (see data/taxonomy.yaml)")
                out[kind] = tuple(values)
            return Codes(out["categories"], out["audiences"],
                         bool(entry.get("location_confidential", False)))

        def conditions(entry: Any, where: str) -> Conditions:
            if not isinstance(entry, dict) or not entry:
                raise MappingError(f"{where}: expected key: value conditions, got {entry!r}")
            out = []
            for key, value in entry.items():
                if value == "*":
                    out.append((str(key), None))
                elif isinstance(value, list):
                    out.append((str(key), frozenset(_text(v) for v in value)))
                else:
                    out.append((str(key), frozenset([_text(value)])))
            return tuple(out)

        rules = []
        if not isinstance(raw.get("resources") or [], list):
            raise MappingError("resources: expected a list of rules")
        for i, entry in enumerate(raw.get("resources") or [], 1):
            where = f"resources rule {i}"
            if not isinstance(entry, dict) or "when" not in entry:
                raise MappingError(f"{where}: expected a mapping with 'when'")
            rules.append(Rule(conditions(entry["when"], where), codes(entry, where)))
        if not rules:
            raise MappingError("no 'resources' rules: nothing would be imported")
        rules.sort(key=lambda rule: -len(rule.when))  # stable: file order among equals
        exclude = tuple(conditions(entry, f"exclude entry {i}")
                        for i, entry in enumerate(raw.get("exclude") or [], 1))
        value_maps = {}
        for key, table in (raw.get("value_maps") or {}).items():
            if not isinstance(table, dict):
                raise MappingError(f"value_maps '{key}': expected value: codes entries")
            value_maps[str(key)] = {_text(v): codes(c or {}, f"value_maps '{key}' value '{v}'")
                                    for v, c in table.items()}
        fields = {}
        for name, keys in (raw.get("fields") or {}).items():
            if name not in MAPPABLE_FIELDS:
                raise MappingError(f"fields: '{name}' is not one of "
                                   f"{', '.join(MAPPABLE_FIELDS)}")
            fields[name] = _keys(keys, f"fields '{name}'")
        address = raw.get("address") or {}
        translations = {}
        for name, pattern in (raw.get("translations") or {}).items():
            if name not in ("name", "description") or "{lang}" not in str(pattern):
                raise MappingError(f"translations '{name}': only name and description, with "
                                   "a '{lang}' placeholder, e.g. \"name:{lang}\"")
            translations.update({str(pattern).format(lang=code): (name, code)
                                 for code in tax.languages})
        languages = raw.get("languages") or {}
        policy = (raw.get("policies") or {}).get("invalid_opening_hours", "drop")
        if policy not in ("drop", "reject"):
            raise MappingError(f"policies.invalid_opening_hours: {policy!r} is not drop or "
                               "reject")
        return cls(rules=tuple(rules), exclude=exclude, value_maps=value_maps, fields=fields,
                   street=_keys(address.get("street") or [], "address street"),
                   housenumber=_keys(address.get("housenumber") or [], "address housenumber"),
                   translations=translations,
                   wheelchair=_value_table(raw.get("wheelchair"), "wheelchair", WHEELCHAIR),
                   cost=_value_table(raw.get("cost"), "cost", COSTS),
                   language_prefix=str(languages.get("prefix") or "language:"),
                   language_offered=frozenset(_text(v) for v in languages.get("offered")
                                              or ["yes"]),
                   invalid_opening_hours=policy)

    def classify(self, tags: Mapping[str, str]) -> list[Rule] | None:
        """The rules ``tags`` match, most specific first; None when it is no resource."""
        matched = [rule for rule in self.rules if _holds(rule.when, tags)]
        if not matched or any(_holds(cond, tags) for cond in self.exclude):
            return None
        return matched

    def record(self, ref: str, tags: Mapping[str, str], rules: list[Rule], where: Where
               ) -> tuple[dict[str, Any], list[Problem]]:
        """Map the tags of the resource ``ref`` (``node/123``) onto the model; returns the
        record and warnings."""
        warnings: list[Problem] = []
        categories: list[str] = []
        audiences: list[str] = []
        confidential = False
        for codes in [rule.codes for rule in rules] + self._refinements(tags, where, warnings):
            categories += codes.categories
            audiences += codes.audiences
            confidential = confidential or codes.confidential
        rec: dict[str, Any] = {"source_id": ref, "categories": list(dict.fromkeys(categories)),
                               "audiences": list(dict.fromkeys(audiences)),
                               "location_confidential": confidential}
        for name, keys in self.fields.items():
            value = _first(tags, keys)[1]
            if value is not None and name in _FIRST_VALUE_ONLY:
                value = (_parts(value) or [None])[0]
            rec[name] = value
        if rec.get("organization"):
            rec["organization"] = {"name": rec["organization"]}
        hours = rec.get("opening_hours")
        if hours and self.invalid_opening_hours == "drop":
            error = _validate._hours_error(hours.strip())
            if error:
                warnings.append(Problem(where.at("opening_hours"), "opening_hours="
                                        f"{hours!r} is not valid ({error}); imported without "
                                        "opening hours"))
                rec["opening_hours"] = None
        if rec.get("last_verified"):
            try:
                rec["last_verified"] = dt.date.fromisoformat(rec["last_verified"][:10])
            except ValueError:
                warnings.append(Problem(where.at("last_verified"), f"check_date="
                                        f"{rec['last_verified']!r} is not a date (YYYY-MM-DD); "
                                        "ignored"))
                rec["last_verified"] = None
        street = _first(tags, self.street)[1]
        number = _first(tags, self.housenumber)[1]
        rec["address"] = " ".join(v for v in (street, number) if v) if street else None
        for field_, table in (("wheelchair", self.wheelchair), ("cost", self.cost)):
            key, values = table
            value = tags.get(key)
            if value is None:
                continue
            if value in values:
                rec[field_] = values[value]
            else:
                warnings.append(Problem(where.at(field_), f"{key}={value!r} is not in "
                                        f"the mapping ({', '.join(values)}); left unknown"))
        rec["languages"] = self._languages(tags, where, warnings)
        rec["translations"] = self._translations(tags, rec)
        return rec, warnings

    def _refinements(self, tags: Mapping[str, str], where: Where,
                     warnings: list[Problem]) -> list[Codes]:
        out = []
        for key, table in self.value_maps.items():
            for value in _parts(tags.get(key, "")):
                if value in table:
                    out.append(table[value])
                else:
                    warnings.append(Problem(where.at(key), f"{key}={value} has no "
                                            "entry in the tag mapping; ignored"))
        return out

    def _languages(self, tags: Mapping[str, str], where: Where,
                   warnings: list[Problem]) -> list[str]:
        known = taxonomy().languages
        languages = []
        for key, value in tags.items():
            if not key.startswith(self.language_prefix) or value not in self.language_offered:
                continue
            code = key[len(self.language_prefix):]
            if code in known:
                languages.append(code)
            else:
                warnings.append(Problem(where.at(key), f"{key}={value}: {code!r} "
                                        "is not a language of the taxonomy "
                                        "(data/taxonomy.yaml); ignored"))
        return languages

    def _translations(self, tags: Mapping[str, str], rec: Mapping[str, Any]
                      ) -> dict[str, dict[str, str]]:
        """``name:xx`` etc. for the taxonomy's languages; a copy of the main value (``name:de``
        = ``name`` in Hamburg) is no translation and left out."""
        out: dict[str, dict[str, str]] = {}
        for key, value in tags.items():
            target = self.translations.get(key)
            value = value.strip()
            if target and value and value != rec.get(target[0]):
                out.setdefault(target[1], {})[target[0]] = value
        return out


def _keys(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MappingError(f"{where}: expected a list of OSM keys")
    return tuple(value)


def _value_table(entry: Any, where: str, allowed: Sequence[str]) -> tuple[str, dict[str, str]]:
    if not isinstance(entry, dict) or "key" not in entry:
        raise MappingError(f"{where}: expected 'key' and 'values'")
    values = {_text(k): _text(v) for k, v in (entry.get("values") or {}).items()}
    wrong = [v for v in values.values() if v not in allowed]
    if wrong:
        raise MappingError(f"{where}: {', '.join(wrong)} not one of {', '.join(allowed)}")
    return str(entry["key"]), values


def _first(tags: Mapping[str, str], keys: Iterable[str]) -> tuple[str | None, str | None]:
    for key in keys:
        value = (tags.get(key) or "").strip()
        if value:
            return key, value
    return None, None


# ---- geometry ---------------------------------------------------------------------------------
LonLat = tuple[float, float]


@dataclass
class _Element:
    """A matching OSM element with whatever geometry the input gave for it."""

    ref: str  # "node/1"
    tags: dict[str, str]
    rules: list[Rule]
    item: int = 0  # position for the report: in the Overpass "elements" list, else running
    shape: BaseGeometry | None = None
    center: LonLat | None = None  # Overpass "out center": a bbox centre, maybe outside
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _way_shape(coords: Sequence[LonLat]) -> BaseGeometry | None:
    """A way's geometry: a polygon when it is closed (an area), else a line (or a point)."""
    distinct = set(coords)
    if not distinct:
        return None
    if len(distinct) == 1:
        return Point(coords[0])
    if len(distinct) >= 3 and coords[0] == coords[-1]:
        polygon = Polygon(coords)
        if not polygon.is_valid:  # self-touching rings are common; the area is still meant
            polygon = shapely.make_valid(polygon)
        if polygon.area > 0:
            return polygon
    return LineString(coords)


def _relation_shape(tags: Mapping[str, str], members: Sequence[tuple[str, Sequence[LonLat]]],
                   notes: list[str]) -> BaseGeometry | None:
    """A relation's geometry from its members' coordinates (``(role, coords)``; a node member
    has one coordinate). Multipolygons and boundaries become their area; other relations
    (sites, routes) the collection of their members."""
    if tags.get("type") in _AREA_RELATIONS:
        lines = {"outer": [], "inner": []}
        for role, coords in members:
            if len(coords) > 1:
                lines["inner" if role == "inner" else "outer"].append(LineString(coords))
        outer = unary_union(list(polygonize(lines["outer"])))
        if not outer.is_empty:
            inner = unary_union(list(polygonize(lines["inner"])))
            area = outer.difference(inner) if not inner.is_empty else outer
            if not area.is_empty:
                return area
        notes.append("its member ways do not close to an area (members missing from the "
                      "file?); placed on its members")
    parts = [shape for _, coords in members if (shape := _way_shape(coords)) is not None]
    return GeometryCollection(parts) if parts else None


def _is_area(shape: BaseGeometry | None) -> bool:
    return shape is not None and not shape.is_empty and int(shapely.get_dimensions(shape)) == 2


def _inside_point(element: _Element) -> LonLat | None:
    """A point inside the element: an Overpass centre when it lies in the area, else a point
    on its surface (for a line: on the line)."""
    shape = element.shape
    if element.center is not None:
        if shape is None or shape.is_empty:
            return element.center
        if _is_area(shape) and shape.covers(Point(element.center)):
            return element.center
    if shape is None or shape.is_empty:
        return None
    if isinstance(shape, Point):
        return shape.x, shape.y
    point = shape.point_on_surface()
    return point.x, point.y


# ---- from elements to candidates -------------------------------------------------------------
def _candidates(elements: list[_Element], mapping: TagMapping, file: str) -> Iterator[Candidate]:
    """Map placed elements to candidates; adds possible node/area duplicates as warnings."""
    placed: list[tuple[_Element, LonLat | None]] = [(el, _inside_point(el)) for el in elements]
    duplicates = _possible_duplicates(placed)
    for el, point in placed:
        where = Where(file, el.item, "element", ref=el.ref)
        rec, warnings = mapping.record(el.ref, el.tags, el.rules, where)
        # the element's type/id travels in ``where.ref`` (shown as "element 3 (way/456)")
        problems = [Problem(where.at("geometry"), msg) for msg in el.errors]
        warnings += [Problem(where.at("geometry"), msg) for msg in el.notes]
        if point is None and not problems:
            problems.append(Problem(where.at("lat/lon"), "no coordinates in the file"))
        rec["lat"], rec["lon"] = ((round(point[1], 7), round(point[0], 7)) if point
                                  else (None, None))
        warnings += [Problem(where, msg) for msg in duplicates.get(el.ref, [])]
        yield Candidate(where, rec, problems, warnings)


def _possible_duplicates(placed: list[tuple[_Element, LonLat | None]]) -> dict[str, list[str]]:
    """The same place is often mapped twice in OSM (a POI node inside its building, tagged
    alike). Report — never merge — elements sharing a category where one lies inside the other's
    area, or with the same name within :data:`DUPLICATE_DISTANCE_M`."""
    found: dict[str, list[str]] = {}
    reported: set[tuple[str, str]] = set()

    def categories(el: _Element) -> set[str]:
        return {c for rule in el.rules for c in rule.codes.categories}

    areas = [(el, p) for el, p in placed if p and _is_area(el.shape)]
    points = [(el, p) for el, p in placed if p]
    if areas and points:
        tree = shapely.STRtree([el.shape for el, _ in areas])
        hits = tree.query([Point(p) for _, p in points], predicate="within")
        for i, j in zip(*hits):
            el, area = points[i][0], areas[j][0]
            if el is not area and categories(el) & categories(area):
                reported.add((el.ref, area.ref))
                found.setdefault(el.ref, []).append(
                    f"possible duplicate: {el.ref} lies inside {area.ref} "
                    f"({area.tags.get('name', 'no name')!r}) with the same category; both kept")
    by_name: dict[str, list[tuple[_Element, LonLat]]] = {}
    for el, p in points:
        if el.tags.get("name"):
            by_name.setdefault(el.tags["name"].casefold().strip(), []).append((el, p))
    for group in by_name.values():
        if len(group) < 2:
            continue
        later, earlier = np.triu_indices(len(group), 1)[::-1]  # every pair once, in file order
        lonlat = np.array([p for _, p in group])
        metres = _GEOD.inv(lonlat[later, 0], lonlat[later, 1], lonlat[earlier, 0],
                           lonlat[earlier, 1])[2]
        for k, i, m in zip(later.tolist(), earlier.tolist(), np.atleast_1d(metres).tolist()):
            el, other = group[k][0], group[i][0]
            if m <= DUPLICATE_DISTANCE_M and not {(el.ref, other.ref),
                                                  (other.ref, el.ref)} & reported:
                found.setdefault(el.ref, []).append(
                    f"possible duplicate: {el.ref} has the same name as {other.ref}, "
                    f"{m:.0f} m away; both kept")
    return found


class _OsmReader(ABC):
    """What the two OSM formats share: the tag table and the element -> candidate mapping."""

    name = ""
    suffixes: tuple[str, ...] = ()
    #: OSM data is ODbL; the licence requires this attribution wherever the data is shown.
    licence = "ODbL-1.0"
    attribution = "© OpenStreetMap contributors"

    def read(self, path: Path, options: ImportOptions) -> Iterator[Candidate]:
        try:
            mapping = TagMapping.load(options.mapping)
        except MappingError as exc:
            raise ImportFailed([Problem(Where(str(options.mapping or MAPPING_FILE)),
                                        str(exc))]) from None
        elements, skipped = self.elements(path, mapping)
        log.debug("%s: %d matching elements; %d with a mapped key matched no rule (skipped)",
                  path, len(elements), skipped)
        if not elements:  # an empty or wrong extract must not pass as "nothing changed"
            raise ImportFailed([Problem(Where(str(path)), (
                "no element of the file matches the tag mapping" + (
                    f" ({skipped} tagged elements matched none of its rules)" if skipped
                    else "") + "; is it the extract or query you meant?"))])
        yield from _candidates(elements, mapping, str(path))

    @abstractmethod
    def elements(self, path: Path, mapping: TagMapping) -> tuple[list[_Element], int]:
        """The matching elements of ``path`` with their geometry, and how many elements with
        a mapped key matched no rule."""


# ---- .osm / .osm.pbf via pyosmium -----------------------------------------------------------
class OsmFileReader(_OsmReader):
    """``.osm``, ``.osm.gz``, ``.osm.bz2``, ``.osm.pbf``: whatever libosmium reads."""

    name = "osm"
    suffixes = (".osm", ".osm.gz", ".osm.bz2", ".osm.pbf", ".pbf")

    def sniff(self, path: Path) -> bool:
        return path.name.lower().endswith(self.suffixes)

    def elements(self, path: Path, mapping: TagMapping) -> tuple[list[_Element], int]:
        try:
            return _read_osm_file(path, mapping)
        except (RuntimeError, OSError, ValueError, osmium.InvalidLocationError) as exc:
            # libosmium: RuntimeError; a node whose lat/lon is not a number, out of range or
            # not finite: InvalidLocationError
            raise ImportFailed([Problem(Where(str(path)), f"cannot read the OSM file: "
                                        f"{type(exc).__name__}: {exc}")]) from None


def _read_osm_file(path: Path, mapping: TagMapping) -> tuple[list[_Element], int]:
    skipped = 0
    relations: list[tuple[_Element, list[tuple[str, int, str]]]] = []
    locations = osmium.index.create_map("flex_mem")  # every node, for ways and members
    elements: list[_Element] = []
    for obj in osmium.FileProcessor(str(path)).with_locations(locations) \
            .with_filter(osmium.filter.KeyFilter(*mapping.filter_keys)):
        tags = dict(obj.tags)
        rules = mapping.classify(tags)
        if rules is None:
            skipped += 1
            continue
        if obj.is_relation():
            relations.append((_Element(f"relation/{obj.id}", tags, rules),
                              [(m.type, m.ref, m.role) for m in obj.members]))
            continue  # placed once their member ways are known, below
        if obj.is_node():
            el = _Element(f"node/{obj.id}", tags, rules)
            if obj.location.valid():
                el.shape = Point(obj.location.lon, obj.location.lat)
            else:
                el.errors.append("the node has no valid location")
        else:
            el = _Element(f"way/{obj.id}", tags, rules)
            coords = [(n.location.lon, n.location.lat) for n in obj.nodes if n.location.valid()]
            _place_way(el, coords, [n.ref for n in obj.nodes if not n.location.valid()])
        elements.append(el)

    # Member ways rarely carry a mapped key, so the pass above did not see them: a second pass
    # reads just those (by id), only when a matching relation needs them.
    member_ways = {ref for _, members in relations for kind, ref, _ in members if kind == "w"}
    way_nodes: dict[int, list[int]] = {}
    if member_ways:
        for way in osmium.FileProcessor(str(path), osmium.osm.WAY).with_filter(
                osmium.filter.IdFilter(member_ways)):
            way_nodes[way.id] = [n.ref for n in way.nodes]

    def location(node_id: int) -> LonLat | None:
        try:
            loc = locations.get(node_id)
        except KeyError:
            return None
        return (loc.lon, loc.lat) if loc.valid() else None

    for el, members in relations:
        resolved, missing = [], 0
        for kind, ref, role in members:
            ids = [ref] if kind == "n" else way_nodes.get(ref, []) if kind == "w" else []
            coords = [c for c in map(location, ids) if c is not None]
            if coords:
                resolved.append((role, coords))
            elif kind in ("n", "w"):
                missing += 1
        _place_relation(el, resolved, missing)
        elements.append(el)
    for number, el in enumerate(elements, 1):
        el.item = number
    return elements, skipped


def _place_way(el: _Element, coords: list[LonLat], missing: Sequence[Any]) -> None:
    """Set a way's shape from the coordinates found; name the nodes that were not."""
    el.shape = _way_shape(coords)
    if missing:
        listed = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        message = f"{len(missing)} of its nodes are not in the file ({listed})"
        if el.shape is None and el.center is None:
            el.errors.append(message + "; for Overpass, query with 'out geom', 'out center' "
                             "or recurse down ('>;')")
        else:
            el.notes.append(message + "; placed by the rest")


def _place_relation(el: _Element, members: list[tuple[str, Sequence[LonLat]]],
                    missing: int) -> None:
    """Set a relation's shape from its resolved members."""
    el.shape = _relation_shape(el.tags, members, el.notes)
    if el.shape is None and el.center is None:
        el.errors.append("none of its node or way members have coordinates in the file "
                         "(sub-relations are not followed); for Overpass, query with "
                         "'out geom' or 'out center' or recurse down ('>;')")
    elif missing:
        el.notes.append(f"{missing} of its members are not in the file; placed by the rest")


# ---- Overpass API JSON -----------------------------------------------------------------------
_SNIFF_BYTES = 65536
_OSM_TYPES = ("node", "way", "relation", "area")
_OVERPASS_MARK = re.compile(rb'"osm3s"\s*:|"generator"\s*:\s*"Overpass')
_ELEMENTS_START = re.compile(rb'"elements"\s*:\s*\[\s*(\]|\{\s*"type"\s*:\s*'
                             rb'"(node|way|relation|area)")')


def _is_overpass(data: Any) -> bool:
    """An Overpass result: ``elements`` holding OSM elements, and no GeoJSON ``features``."""
    if not isinstance(data, dict) or not isinstance(data.get("elements"), list) \
            or "features" in data:
        return False
    if "osm3s" in data or "Overpass" in str(data.get("generator", "")):
        return True
    first = data["elements"][:5]
    return bool(first) and all(isinstance(e, dict) and e.get("type") in _OSM_TYPES
                               and "id" in e for e in first)


class OverpassReader(_OsmReader):
    """Overpass API ``[out:json]`` output: ``out center``, ``out geom``, or ``out body`` with
    the referenced nodes (and ways) in the same file (``>;``)."""

    name = "overpass"
    suffixes = (".json",)

    def sniff(self, path: Path) -> bool:
        """By content, never by suffix (Overpass output is saved as .json, like GeoJSON and
        HSDS): a JSON object with an ``elements`` list of OSM elements. A small file is parsed;
        of a large one, the head: Overpass writes ``version``, ``generator`` and ``osm3s``
        before ``elements``."""
        try:
            with path.open("rb") as fh:
                head = fh.read(_SNIFF_BYTES).lstrip(b"\xef\xbb\xbf")
        except OSError:
            return False
        if len(head) < _SNIFF_BYTES - 3:
            try:
                return _is_overpass(orjson.loads(head))
            except orjson.JSONDecodeError:
                return False
        start = head.find(b'"elements"')
        prefix = head[:start]
        if not head.lstrip().startswith(b"{") or start < 0 or b'"features"' in prefix:
            return False
        return bool(_OVERPASS_MARK.search(prefix) or _ELEMENTS_START.match(head, start))

    def elements(self, path: Path, mapping: TagMapping) -> tuple[list[_Element], int]:
        file = str(path)
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ImportFailed([Problem(Where(file), f"not JSON: {exc}")]) from None
        except OSError as exc:
            raise ImportFailed([Problem(Where(file), f"cannot read the file: {exc}")]) from None
        if not isinstance(data, dict) or not isinstance(data.get("elements"), list):
            raise ImportFailed([Problem(Where(file), "not Overpass JSON: no 'elements' list "
                                        "(expected the output of an [out:json] query)")])
        remark = str(data.get("remark") or "")
        if "error" in remark.lower():
            raise ImportFailed([Problem(Where(file), f"Overpass reported an error, the result "
                                        f"is incomplete: {remark.strip()}")])
        raw = data["elements"]
        nodes: dict[int, LonLat] = {}
        ways: dict[int, dict[str, Any]] = {}
        for item in raw:
            if isinstance(item, dict) and isinstance(item.get("id"), int):
                if item.get("type") == "node" and (point := _lonlat(item)) is not None:
                    nodes[item["id"]] = point
                elif item.get("type") == "way":
                    ways[item["id"]] = item
        elements, skipped = [], 0
        broken: list[Problem] = []
        for number, item in enumerate(raw, 1):
            where = Where(file, number, "element")
            if not isinstance(item, dict):
                broken.append(Problem(where, "not an OSM element but " + _validate.json_kind(item)))
                continue
            tags = item.get("tags")
            if tags is None:  # untagged: a node or way that only gives geometry
                continue
            if not isinstance(tags, dict):
                broken.append(Problem(where.at("tags"), "'tags' must be an object of key/"
                                      "value pairs, not " + _validate.json_kind(tags)))
                continue
            tags = {str(k): _text(v) for k, v in tags.items()}
            rules = mapping.classify(tags)
            if rules is None:
                skipped += 1
                continue
            kind, osm_id = item.get("type"), item.get("id")
            el = _Element(f"{kind}/{osm_id}", tags, rules, item=number)
            if kind not in ("node", "way", "relation") or not isinstance(osm_id, int) \
                    or isinstance(osm_id, bool):
                el.errors.append(f"not an OSM element: type {kind!r}, id {osm_id!r}")
            else:
                _overpass_geometry(el, item, nodes, ways)
            elements.append(el)
        if broken:  # not what Overpass writes: a damaged or hand-edited file
            raise ImportFailed(broken, len(raw))
        if not raw:
            raise ImportFailed([Problem(Where(file, field="elements"), (
                "the Overpass result has no elements: check the query's area and filters, "
                "and whether it ran into its timeout"))])
        return elements, skipped


def _lonlat(item: Any) -> LonLat | None:
    """``{"lat": .., "lon": ..}`` as (lon, lat); None when missing or not finite numbers."""
    if not isinstance(item, dict):
        return None
    lat, lon = item.get("lat"), item.get("lon")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
           for v in (lat, lon)):
        return float(lon), float(lat)
    return None


def _way_coords(way: Mapping[str, Any], nodes: Mapping[int, LonLat]
                ) -> tuple[list[LonLat], list[Any]]:
    """A way's coordinates: from ``geometry`` (out geom; null entries lie outside the query's
    bbox) or from ``nodes`` looked up in the file; and the node ids not found."""
    geometry = way.get("geometry")
    if isinstance(geometry, list):
        return [c for c in map(_lonlat, geometry) if c is not None], []
    refs = way.get("nodes")
    coords, missing = [], []
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, int) and ref in nodes:
            coords.append(nodes[ref])
        else:
            missing.append(ref)
    return coords, missing


def _overpass_geometry(el: _Element, item: Mapping[str, Any], nodes: Mapping[int, LonLat],
                       ways: Mapping[int, Mapping[str, Any]]) -> None:
    el.center = _lonlat(item.get("center"))
    if "center" in item and el.center is None:
        el.notes.append(f"'center' {item.get('center')!r} is not a coordinate; ignored")
    kind = item["type"]
    if kind == "node":
        point = _lonlat(item)
        if point is None:
            el.errors.append(f"no coordinates: lat {item.get('lat')!r}, lon {item.get('lon')!r}")
        else:
            el.shape = Point(point)
    elif kind == "way":
        if "geometry" not in item and "nodes" not in item and el.center is not None:
            return
        coords, missing = _way_coords(item, nodes)
        if not coords and not missing and el.center is None:
            el.errors.append("no coordinates: the way has no usable 'geometry', 'center' or "
                             "'nodes'; query with 'out geom' or 'out center'")
            return
        _place_way(el, coords, missing)
    else:
        members, missing = [], 0
        for member in item.get("members") or []:
            if not isinstance(member, dict):
                continue
            role = str(member.get("role") or "")
            ref = member.get("ref") if isinstance(member.get("ref"), int) else None
            if member.get("type") == "node":
                point = _lonlat(member) or nodes.get(ref)  # type: ignore[arg-type]
                coords = [point] if point else []
            elif member.get("type") == "way":
                source = member if "geometry" in member else ways.get(ref, {})  # type: ignore
                coords = _way_coords(source, nodes)[0]
            else:
                continue  # sub-relations: their own members carry the geometry
            if coords:
                members.append((role, coords))
            else:
                missing += 1
        _place_relation(el, members, missing)


register(OsmFileReader())
register(OverpassReader())
