"""GIS vector files through pyogrio/GDAL: GeoJSON, GeoPackage, Shapefile (also zipped), GML/WFS
output, and whatever else GDAL reads.

Coordinates are reprojected to WGS84 from the CRS the file declares, or from ``--crs``, which
also overrides a declared one. A file that declares no CRS and whose coordinates cannot be
longitude/latitude is refused (Hamburg's own data is usually EPSG:25832). Lines and polygons
become a point *inside* them (``point_on_surface``; a centroid can fall outside a bent
building). Attributes are mapped with the CSV column mapping (:mod:`importers.csv_reader`).
"""
from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson
import shapely

from .csv_reader import (CODED_FIELDS, FIELDS, LIST_FIELDS, RowMapper, finish, load_mapping,
                         transformer)
from .pipeline import (GEOJSON_TYPE, Candidate, ImportFailed, ImportOptions, Problem, Where,
                       register)
from .validate import json_kind, text_problem

_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip", ".gml", ".xml", ".kml", ".fgb",
             ".sqlite", ".geojsonl", ".geojsons")
_ZIPPED = (".shp", ".gpkg", ".geojson", ".gml", ".kml", ".fgb")
# GML: find the srsName on the geometries even when an .xsd lies beside the file (Hamburg's WFS
# output, see the Kita sample), and never write a .gfs file next to the user's data.
_GML_OPTIONS = {"FORCE_SRS_DETECTION": "YES", "WRITE_GFS": "NO"}


@dataclass
class Layer:
    """One layer of a vector file: attribute columns and geometries in their own CRS."""

    file: str  # how problems name it: the path, plus the layer when the file has several
    name: str
    crs: str | None
    fields: list[str]
    columns: list[np.ndarray]
    geometries: np.ndarray  # shapely geometries (None where a feature has none)

    def row(self, index: int) -> dict[str, Any]:
        return {name: column[index] for name, column in zip(self.fields, self.columns)}


def gdal_path(path: Path) -> str:
    """The path GDAL opens: a .zip through /vsizip/."""
    text = str(path)
    return f"/vsizip/{text}" if path.suffix.lower() == ".zip" else text


def read_layers(path: Path, layer: str | None = None) -> Iterator[Layer]:
    """The layers of ``path`` that have geometries (or only ``layer``), read whole."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError, FieldError, GeometryError

    file = str(path)
    source = gdal_path(path)
    suffix = path.suffix.lower()
    # GeoJSON: text stays text (GDAL would read a property whose every value looks like a
    # time, "10:00", as a Time and hand on "10:00:00")
    options = (_GML_OPTIONS if suffix in (".gml", ".xml")
               else {"DATE_AS_STRING": "YES"} if suffix in (".geojson", ".json") else {})
    errors = (DataSourceError, DataLayerError, FieldError, GeometryError, OSError, ValueError,
              RuntimeError)
    if path.is_file() and path.stat().st_size == 0:
        raise ImportFailed([Problem(Where(file), "the file is empty")])
    try:
        listed = pyogrio.list_layers(source)
    except errors as exc:
        raise ImportFailed([Problem(Where(file), _unreadable(path, exc))]) from None
    names = [str(n) for n, kind in listed if kind is not None]
    if layer is not None:
        if layer not in [str(n) for n, _kind in listed]:
            raise ImportFailed([Problem(Where(file, field="layer"), f"no layer {layer!r}; the "
                                        f"file has {', '.join(map(str, listed[:, 0]))}")])
        names = [layer]
    if not names:
        raise ImportFailed([Problem(Where(file), "the file has no layer with geometries")])
    for name in names:
        try:
            meta, _fids, wkb, columns = pyogrio.raw.read(source, layer=name,
                                                         datetime_as_string=True, **options)
        except errors as exc:
            raise ImportFailed([Problem(Where(file), f"cannot read layer {name!r}: {exc}")]
                               ) from None
        with np.errstate(invalid="ignore"):  # NaN coordinates: refused later, by feature
            geometries = (shapely.from_wkb(wkb, on_invalid="ignore") if wkb is not None
                          else np.full(len(columns[0]) if columns else 0, None, dtype=object))
        label = file if len(names) == 1 else f"{file} (layer {name})"
        yield Layer(label, name, meta.get("crs"), [str(f) for f in meta["fields"]],
                    list(columns), geometries)


def to_wgs84(geometries: np.ndarray, crs: str | None, override: str | None,
             file: str) -> np.ndarray:
    """``geometries`` in EPSG:4326 (lon, lat). ``override`` (``--crs``) wins over the declared
    ``crs``; with neither, coordinates must already be lon/lat."""
    source = override or crs
    if source is None:
        present = geometries[~shapely.is_missing(geometries) & ~shapely.is_empty(geometries)]
        if len(present):
            minx, miny, maxx, maxy = shapely.total_bounds(present)
            if max(abs(minx), abs(maxx)) > 180 or max(abs(miny), abs(maxy)) > 90:
                raise ImportFailed([Problem(Where(file, field="crs"), (
                    f"the file declares no coordinate reference system and its coordinates "
                    f"(x {minx:.0f}..{maxx:.0f}, y {miny:.0f}..{maxy:.0f}) are not "
                    "longitude/latitude; pass the CRS they are in, e.g. --crs EPSG:25832 "
                    "(ETRS89 / UTM 32N, common in Hamburg's data)"))])
        return geometries
    project = transformer(source, file)
    if project.source_crs is not None and project.source_crs.to_epsg() == 4326:
        return geometries

    def _xy(coords: np.ndarray) -> np.ndarray:
        x, y = project.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometries, _xy)


def inner_points(geometries: np.ndarray) -> np.ndarray:
    """A point inside each geometry (the point itself for points); None for none/empty."""
    points = np.full(len(geometries), None, dtype=object)
    present = ~shapely.is_missing(geometries) & ~shapely.is_empty(geometries)
    # A NaN coordinate gives a NaN point (refused by validation, with its feature number), not
    # a RuntimeWarning on the importer's output.
    with np.errstate(invalid="ignore"):
        try:
            points[present] = shapely.point_on_surface(geometries[present])
        except shapely.errors.GEOSException:  # an invalid polygon: repair it, one by one
            for index in np.flatnonzero(present):
                points[index] = shapely.point_on_surface(shapely.make_valid(geometries[index]))
    return points


class VectorReader:
    """Points, lines and polygons with attributes; each feature becomes one record."""

    name = "vector"
    suffixes = _SUFFIXES

    def sniff(self, path: Path) -> bool:
        suffix = path.suffix.lower()
        if not path.is_file() or suffix not in _SUFFIXES:
            return False
        if suffix == ".json":  # also Overpass and HSDS: only claim GeoJSON
            with path.open("rb") as fh:
                head = fh.read(4096).decode("utf-8", "replace")
            return GEOJSON_TYPE.search(head) is not None
        if suffix == ".zip":
            try:
                with zipfile.ZipFile(path) as archive:
                    return any(n.lower().endswith(_ZIPPED) for n in archive.namelist())
            except zipfile.BadZipFile:
                return False
        if suffix == ".xml":
            with path.open("rb") as fh:
                return b"opengis.net/gml" in fh.read(4096)
        return True

    def licence_of(self, path: Path) -> tuple[str | None, str | None] | None:
        """The licence and attribution a GeoJSON file names for its data: the ``sources``
        member of mapservice's export (``[{"name", "licence", "attribution", ...}]``), all
        of them joined when the file holds several sources' data. None when it names none
        (or is no GeoJSON)."""
        if path.suffix.lower() not in (".geojson", ".json") or not path.is_file():
            return None
        try:
            with path.open("rb") as fh:
                head = fh.read(1 << 20)
        except OSError:
            return None
        found = _SOURCES.search(head)
        if found is None:
            return None
        try:  # the member is written first, on one line; read that array alone
            sources, _end = json.JSONDecoder().raw_decode(found.group(1).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(sources, list):
            return None

        def joined(key: str) -> str | None:
            values = [s[key].strip() for s in sources if isinstance(s, dict)
                      and isinstance(s.get(key), str) and s[key].strip()]
            return "; ".join(dict.fromkeys(values)) or None

        licence, attribution = joined("licence"), joined("attribution")
        return (licence, attribution) if licence or attribution else None

    def read(self, path: Path, options: ImportOptions) -> Iterator[Candidate]:
        mapping = load_mapping(options.mapping)
        features = 0
        entries = geojson_entries(path)
        for layer in read_layers(path, mapping.layer):
            positions = None
            if entries is not None:
                positions = entries.positions
                if len(positions) != len(layer.geometries):  # GDAL read them otherwise
                    positions = None
                    if entries.cut:  # no telling which record was cut: none is imported
                        raise ImportFailed([p for ps in entries.cut.values() for p in ps])
                yield from entries.refused
                features += len(entries.refused)
                if positions is not None:
                    entries.id_column(layer, positions)
            if not len(layer.geometries):
                continue
            points = to_wgs84(inner_points(layer.geometries), layer.crs, options.crs,
                              layer.file)
            columns = mapping.resolve(layer.fields)
            columns.require(layer.file, layer.fields, place=False)
            mapper = RowMapper(mapping, columns, country=options.region_country)
            note = ([Problem(Where(layer.file), "attributes not used: "
                             + ", ".join(columns.unused))] if columns.unused else [])
            for index in range(len(points)):
                where = Where(layer.file, positions[index] if positions else index + 1,
                              "feature")
                row = layer.row(index)
                cand = mapper(_as_written(row), where)
                if positions and entries is not None:
                    cand.problems += entries.problems(positions[index], columns.fields, where,
                                                      row)
                point = points[index]
                if point is not None and not shapely.is_empty(point):
                    cand.record["lon"], cand.record["lat"] = point.x, point.y
                elif cand.record.get("lat") is None:
                    cand.warnings.append(Problem(where, "no geometry"))
                cand.warnings[:0], note = note, []
                features += 1
                yield finish(cand)
        if not features:
            raise ImportFailed([Problem(Where(str(path)), "the file has no features")])


#: The start of a FeatureCollection with the "sources" member mapservice's export writes.
_SOURCES = re.compile(rb'^\s*\{\s*"type"\s*:\s*"FeatureCollection"\s*,\s*"sources"\s*:\s*'
                      rb'(\[.*?\])\s*,\s*"features"', re.S)


def _as_written(row: dict[str, Any]) -> dict[str, Any]:
    """The attributes for the column mapper, which drops the apostrophe a spreadsheet puts
    before = + - @ (the formula guard of CSV files, mapservice's export included): a GIS
    file's text that starts so ("'=Treff'") keeps it, so it gets one more here."""
    return {key: "'" + value if type(value) is str and value[:1] == "'"
            and value[1:2] in ("=", "+", "-", "@") else value for key, value in row.items()}


#: Fields that take one text (or number): GDAL would turn a JSON true, object or list in
#: them into the text "true", '{ "de": "Treff" }' or '[ "Treff" ]'.
_SCALAR_TEXT = frozenset(FIELDS) - {*LIST_FIELDS, *CODED_FIELDS, "translations", "lat", "lon"}


#: Whole numbers up to this size are exact in a float (GDAL reads numbers beyond int64, and
#: every number of a property that also holds fractions, as floats).
_EXACT = 2 ** 53
_LONG_DIGITS = re.compile(rb"\d{16}")


@dataclass
class GeoJsonEntries:
    """What the JSON of a GeoJSON FeatureCollection tells beyond what GDAL reads from it."""

    positions: list[int]  # 1-based, in 'features', of the entries GDAL reads as features
    refused: list[Candidate]  # an invalid candidate for each other entry
    cut: dict[int, list[Problem]]  # by position: properties holding a NUL
    typed: dict[int, dict[str, str]]  # by position: property -> 'true', 'an object', ...
    wide: dict[int, dict[str, int]]  # by position: property -> a whole number beyond 2**53
    ids: dict[int, str]  # by position: the Feature's own "id" when it is a number

    def id_column(self, layer: Layer, positions: list[int]) -> None:
        """Give ``layer`` the Features' numeric ids as its column "id" (the source id), when
        it has no "id" property: GDAL takes a numeric Feature id as the feature's number (its
        FID) and hands it on with no attribute, while a text id becomes the attribute "id"."""
        if self.ids and "id" not in layer.fields:
            layer.fields.append("id")
            layer.columns.append(np.array([self.ids.get(p) for p in positions], dtype=object))

    def problems(self, position: int, fields: dict[str, str], where: Where,
                 row: dict[str, Any]) -> list[Problem]:
        """The problems of the feature at ``position``, whose properties feed ``fields``
        (field -> property) and which GDAL read as ``row``."""
        found = list(self.cut.get(position, ()))
        for prop, number in self.wide.get(position, {}).items():
            read = row.get(prop)
            kept = (int(read) == number if isinstance(read, (int, np.integer))
                    else read == str(number))
            if prop in fields.values() and not kept:
                found.append(Problem(where.at(prop), f"is the whole number {number}, which "
                                     "a GIS reader keeps only rounded "
                                     f"({float(number):.17g}); write it as text: \"{number}\""))
        typed = self.typed.get(position)
        if typed:
            found += [Problem(where.at(prop), f"is {typed[prop]}, not text ({name})"
                              if name != prop else f"is {typed[prop]}, not text")
                      for name, prop in fields.items()
                      if name in _SCALAR_TEXT and prop in typed]
        return found


def geojson_entries(path: Path) -> GeoJsonEntries | None:
    """What GDAL passes over without a word in a GeoJSON FeatureCollection: it skips an entry
    of ``features`` that is not an object of type "Feature" (a bare geometry, a string,
    "feature"), cuts a text at its first NUL ("Treff\\u0000Nord" is read as "Treff") and turns
    true, objects and lists into text; the import names each. None for other files."""
    if path.suffix.lower() not in (".geojson", ".json") or not path.is_file():
        return None
    try:
        raw = path.read_bytes()
        # orjson reads a whole number beyond 64 bits as a float: the json module keeps it
        data = json.loads(raw) if _LONG_DIGITS.search(raw) else orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError, RecursionError, OSError):
        return None  # GDAL's error (or _unreadable) tells
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" \
            or not isinstance(data.get("features"), list):
        return None
    features = data["features"]
    positions: list[int] = []
    refused: list[Candidate] = []
    cut: dict[int, list[Problem]] = {}
    typed: dict[int, dict[str, str]] = {}
    wide: dict[int, dict[str, int]] = {}
    ids: dict[int, str] = {}
    for number, entry in enumerate(features, 1):
        if isinstance(entry, dict) and entry.get("type") == "Feature":
            positions.append(number)
            if type(entry.get("id")) is int:
                ids[number] = str(entry["id"])
            properties = entry.get("properties")
            if isinstance(properties, dict):
                problems = _nul_problems(properties, Where(str(path), number, "feature"))
                if problems:
                    cut[number] = problems
                kinds = {key: str(value).lower() if isinstance(value, bool)
                         else json_kind(value) for key, value in properties.items()
                         if isinstance(value, (bool, dict, list))}
                if kinds:
                    typed[number] = kinds
                big = {key: value for key, value in properties.items()
                       if type(value) is int and abs(value) > _EXACT}
                if big:
                    wide[number] = big
            continue
        what = (f"an object of type {str(entry.get('type'))[:40]!r}" if isinstance(entry, dict)
                and "type" in entry else "an object without a type"
                if isinstance(entry, dict) else json_kind(entry))
        where = Where(str(path), number, "feature")
        refused.append(Candidate(where, {}, [Problem(where, f"not a GeoJSON Feature but {what}; "
                                                            "each entry of 'features' must be "
                                                            'an object of type "Feature"')]))
    return GeoJsonEntries(positions, refused, cut, typed, wide, ids)


def _nul_problems(properties: dict[str, Any], where: Where) -> list[Problem]:
    """A problem for each property of a GeoJSON Feature whose name or text value holds a NUL
    (which GDAL would silently cut off); nested objects and lists reach the import as JSON
    text, with the NUL escaped, and are checked by validation."""
    problems = []
    for key, value in properties.items():
        if "\x00" in key:
            problems.append(Problem(where.at(key), "the property's name "
                                    f"{text_problem(key)}; save the file without it"))
        elif isinstance(value, str) and "\x00" in value:
            problems.append(Problem(where.at(key), f"{text_problem(value)}; save the file "
                                    "without it (a GIS reader would cut the text there)"))
    return problems


def _unreadable(path: Path, exc: Exception) -> str:
    """Why GDAL cannot open ``path``; for a .geojson that is not JSON, where the JSON breaks
    (GDAL only says "not recognized as being in a supported file format")."""
    if path.suffix.lower() in (".geojson", ".json"):
        try:
            json.loads(path.read_bytes())
        except ValueError as error:
            return f"not valid JSON: {error}"
        except RecursionError:
            return "not readable: the JSON is nested too deeply"
        except OSError:
            pass
    return f"cannot read as a GIS vector file: {exc}"


register(VectorReader())
