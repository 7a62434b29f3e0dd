"""CSV files, and the column mapping that CSV and GIS vector attributes share.

A file's columns are matched to the model's fields by the synonyms in
``data/mappings/csv_columns.yaml`` (or a ``--mapping`` file in the same format); free-text
categories, audiences and languages become codes through ``data/mappings/categories.yaml``.
Reading never raises on a bad row: the row becomes a :class:`~importers.pipeline.Candidate`
with problems naming its row and column, and the pipeline decides. Only a file that cannot be
read at all (empty, undecodable, no name column) raises :class:`ImportFailed`.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import yaml

# Imported here, early, on purpose: pyproj's bundled PROJ must be loaded before mod_spatialite
# brings the system's libproj (RTLD_GLOBAL); the other order crashes the process at exit.
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from mapservice.models import COSTS, STATUSES, WHEELCHAIR
from mapservice.paths import DATA_DIR
from mapservice.taxonomy import default as taxonomy

from .pipeline import Candidate, ImportFailed, ImportOptions, Problem, Where, register

MAPPINGS_DIR = DATA_DIR / "mappings"
# Everything a column can feed: the model's content fields, the record's source id, and the
# parts of an address that files split.
FIELDS = ("source_id", "name", "description", "translations", "categories", "audiences",
          "languages", "cost", "wheelchair", "opening_hours", "address", "housenumber",
          "housenumber_suffix", "postcode", "stadtteil", "bezirk", "lat", "lon", "phone", "email",
          "website", "organization", "location_confidential", "status", "last_verified",
          *(f"organization_{detail}" for detail in ("description", "website", "email",
                                                    "phone")))
LIST_FIELDS = ("categories", "audiences", "languages")
CODED_FIELDS = {"cost": COSTS, "wheelchair": WHEELCHAIR, "status": STATUSES,
                "location_confidential": ("true", "false")}
# A wrong value here could publish a shelter's address or an unpublished listing: an unknown
# value is an error, not a guess. Unknown cost/wheelchair values only warn ("unknown").
STRICT_CODED = ("location_confidential", "status")
TRANSLATABLE = ("name", "description")
_MAPPING_KEYS = {"columns", "ignore", "default_categories", "default_audiences",
                 "local_area_code", "values", "categories", "audiences", "languages",
                 "encoding", "delimiter", "layer"}
_SAMPLE_CHARS = 16_384
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster


class MappingFileError(ImportFailed):
    """A mapping file (``--mapping`` or a shipped one) is malformed; nothing was read."""


def normalise(text: Any) -> str:
    """The comparison form of column names and free-text values: case-, accent- and
    punctuation-insensitive ("Öffnungs-Zeiten" -> "offnungs_zeiten")."""
    return _normalise(str(text))


@lru_cache(maxsize=65_536)  # a file repeats its category and coded values on every row
def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.replace("ß", "ss").replace("ẞ", "ss"))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return _NON_WORD.sub("_", text).strip("_")


_NON_WORD = re.compile(r"[\W_]+")


# ---- the mapping ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnMapping:
    """Column synonyms, value tables and defaults, merged from the shipped files and an
    optional ``--mapping`` file."""

    columns: dict[str, tuple[str, ...]]  # field -> normalised column names, first wins
    ignore: frozenset[str]
    default_categories: tuple[str, ...]
    default_audiences: tuple[str, ...]
    terms: dict[str, dict[str, tuple[str, ...]]]  # list field -> normalised word -> codes
    values: dict[str, dict[str, str]]  # coded field -> normalised word -> value
    local_area_code: str | None
    encoding: str | None = None
    delimiter: str | None = None
    layer: str | None = None

    def resolve(self, headers: Sequence[str]) -> Columns:
        """Which of ``headers`` feeds which field."""
        by_norm: dict[str, str] = {}
        for header in headers:
            by_norm.setdefault(normalise(header), header)
        taken: set[str] = set()
        fields: dict[str, str] = {}
        for name in FIELDS:
            for synonym in self.columns.get(name, ()):
                header = by_norm.get(synonym)
                if header is not None and header not in taken:
                    fields[name] = header
                    taken.add(header)
                    break
        translations: list[tuple[str, str, str]] = []
        languages = taxonomy().languages
        for header in headers:
            if header in taken:
                continue
            match = re.fullmatch(r"(.+)_([a-z]{2})", normalise(header))
            if not match or match.group(2) not in languages:
                continue
            for name in TRANSLATABLE:
                if match.group(1) in self.columns.get(name, ()):
                    translations.append((header, match.group(2), name))
                    taken.add(header)
                    break
        unused = [h for h in headers if h not in taken and normalise(h) not in self.ignore]
        return Columns(fields, translations, unused)


@dataclass(frozen=True)
class Columns:
    """The columns of one file: field -> header, translation columns, and the rest."""

    fields: dict[str, str]
    translations: list[tuple[str, str, str]]  # (header, language, field)
    unused: list[str]

    def require(self, file: str, headers: Sequence[str], *, place: bool,
                by_address: bool = False) -> None:
        """Refuse a file that has no name column, or (``place``) no way to locate a row: no
        coordinates, no postcode or district, and no address (``by_address``: the online
        geocoder is on)."""
        problems = []
        listed = ", ".join(repr(h) for h in headers) or "none"
        if "name" not in self.fields:
            problems.append(Problem(Where(file, field="name"), f"no column for the name; the "
                                    f"columns are {listed}. Name it in a --mapping file "
                                    "(columns: {name: [YourColumn]})"))
        if place:
            has_lat, has_lon = "lat" in self.fields, "lon" in self.fields
            if has_lat != has_lon:
                given, missing = ("lat", "lon") if has_lat else ("lon", "lat")
                problems.append(Problem(Where(file, field=missing), f"a {given} column but no "
                                        f"{missing} column; the columns are {listed}"))
            elif not has_lat and not ({"postcode", "stadtteil", "bezirk"} & set(self.fields)
                                      or (by_address and "address" in self.fields)):
                also = (", and no address column for the online geocoder" if by_address
                        else "")
                problems.append(Problem(Where(file, field="lat/lon"), "no coordinate columns "
                                        "(lat/lon) and no postcode or Stadtteil column to place "
                                        f"rows by{also}; the columns are {listed}"))
        if problems:
            raise ImportFailed(problems)


def _as_list(value: Any, key: str, where: Where) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise MappingFileError([Problem(where.at(key), "expected a name or a list of names")])


def _merge(base: dict[str, Any], doc: dict[str, Any], where: Where) -> None:
    unknown = set(doc) - _MAPPING_KEYS
    if unknown:
        raise MappingFileError([Problem(where.at(k), f"unknown key; known: "
                                        f"{', '.join(sorted(_MAPPING_KEYS))}") for k in unknown])
    for key in ("columns", "values", "categories", "audiences", "languages"):
        if not isinstance(doc.get(key) or {}, dict):
            raise MappingFileError([Problem(where.at(key), "expected a mapping (name: value)")])
    for name, names in (doc.get("columns") or {}).items():
        if name not in FIELDS:
            raise MappingFileError([Problem(where.at(f"columns.{name}"), "not a field; fields: "
                                            + ", ".join(FIELDS))])
        base["columns"][name] = [normalise(n) for n in _as_list(names, f"columns.{name}", where)]
    base["ignore"] |= {normalise(n) for n in _as_list(doc.get("ignore"), "ignore", where)}
    tax = taxonomy()
    for key, allowed in (("default_categories", tax.categories),
                         ("default_audiences", tax.audiences)):
        if key in doc:
            codes = _as_list(doc[key], key, where)
            bad = [c for c in codes if c not in allowed]
            if bad:
                raise MappingFileError([Problem(where.at(key), f"unknown code(s) "
                                                f"{', '.join(bad)}")])
            base[key] = codes
    for key, allowed in (("categories", tax.categories), ("audiences", tax.audiences),
                         ("languages", tax.languages)):
        for code, words in (doc.get(key) or {}).items():
            if code not in allowed:
                raise MappingFileError([Problem(where.at(f"{key}.{code}"), "unknown code")])
            for word in _as_list(words, f"{key}.{code}", where):
                codes = base["terms"][key].setdefault(normalise(word), [])
                if code not in codes:
                    codes.append(code)
    for name, table in (doc.get("values") or {}).items():
        if name not in CODED_FIELDS or not isinstance(table, dict):
            raise MappingFileError([Problem(where.at(f"values.{name}"), "values can be given "
                                            f"for {', '.join(CODED_FIELDS)}")])
        for value, words in table.items():
            value = str(value).lower()
            if value not in CODED_FIELDS[name]:
                raise MappingFileError([Problem(where.at(f"values.{name}.{value}"),
                                                f"not one of {', '.join(CODED_FIELDS[name])}")])
            for word in _as_list(words, f"values.{name}.{value}", where):
                base["values"].setdefault(name, {})[normalise(word)] = value
    for key in ("local_area_code", "encoding", "delimiter", "layer"):
        if key in doc:
            base[key] = None if doc[key] is None else str(doc[key])
    if base.get("delimiter") is not None and len(base["delimiter"].replace("\\t", "\t")) != 1:
        raise MappingFileError([Problem(where.at("delimiter"), "must be one character")])


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MappingFileError([Problem(Where(str(path)), f"cannot read the mapping: {exc}")]
                               ) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise MappingFileError([Problem(Where(str(path)), "a mapping file is a YAML mapping "
                                        "(columns:, default_categories:, ...)")])
    return doc


@lru_cache(maxsize=16)
def _load(path: Path | None, mtime: float | None) -> ColumnMapping:
    base: dict[str, Any] = {"columns": {}, "ignore": set(), "terms": {k: {} for k in LIST_FIELDS},
                            "values": {}, "default_categories": [], "default_audiences": []}
    tax = taxonomy()
    for key in LIST_FIELDS:  # the taxonomy's codes and labels are always understood
        for code, entry in getattr(tax, key).items():
            words = [code, *entry.get("labels", {}).values()]
            words += [entry["native"]] if entry.get("native") else []
            for word in words:
                base["terms"][key].setdefault(normalise(word), [code])
    for file in (MAPPINGS_DIR / "csv_columns.yaml", MAPPINGS_DIR / "categories.yaml", path):
        if file is not None:
            _merge(base, _read_yaml(file), Where(str(file)))
    delimiter = base.get("delimiter")
    return ColumnMapping(
        columns={k: tuple(v) for k, v in base["columns"].items()},
        ignore=frozenset(base["ignore"]),
        default_categories=tuple(base["default_categories"]),
        default_audiences=tuple(base["default_audiences"]),
        terms={k: {w: tuple(c) for w, c in v.items()} for k, v in base["terms"].items()},
        values=base["values"], local_area_code=base.get("local_area_code"),
        encoding=base.get("encoding"),
        delimiter=delimiter.replace("\\t", "\t") if delimiter else None,
        layer=base.get("layer"))


def load_mapping(path: Path | None = None) -> ColumnMapping:
    """The shipped mapping, with ``path`` (a ``--mapping`` file) merged over it."""
    if path is None:
        return _load(None, None)
    path = Path(path).resolve()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise MappingFileError([Problem(Where(str(path)), f"cannot read the mapping: {exc}")]
                               ) from None
    return _load(path, mtime)


# ---- values -----------------------------------------------------------------------------
class _Bad(ValueError):
    """A cell that cannot become its field's value."""


def _scalar(value: Any) -> Any:
    """Plain Python from numpy scalars/arrays (vector attributes); NaN -> None."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


#: The longest cell read (Python's csv module stops at 128 KiB): a description may be long, and
#: mapservice's own export writes whatever the database holds.
CSV_FIELD_LIMIT = 16 << 20
csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))


_GUARDED = ("=", "+", "-", "@")  # what a spreadsheet would read as a formula


def text_value(value: Any) -> str | None:
    """A cell as text: stripped, empty -> None, ``12.0`` -> ``12``, a list -> its first
    non-empty item; the apostrophe that guards a spreadsheet formula (``'+49 ...``, as
    mapservice's own CSV export writes it; ``''=Treff'`` for a text that starts with such an
    apostrophe itself) is dropped."""
    if type(value) is str:  # every CSV cell: the short way
        text = value.strip()
        if text[:1] == "'" and (text[1:2] in _GUARDED or (text[1:2] == "'"
                                                          and text[2:3] in _GUARDED)):
            text = text[1:]
        return text or None
    value = _scalar(value)
    if isinstance(value, (list, tuple)):
        items = [t for t in (text_value(v) for v in value) if t]
        return items[0] if items else None
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
        text = text[1:]
    return text or None


def _items(value: Any) -> list[str]:
    value = _scalar(value)
    if isinstance(value, (list, tuple)):
        return [t for t in (text_value(v) for v in value) if t]
    text = text_value(value)
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [t for t in (text_value(v) for v in parsed) if t]
    return [part.strip() for part in _ITEM_SEPARATORS.split(text) if part.strip()]


_ITEM_SEPARATORS = re.compile(r"[;,|]")


def number(value: Any) -> float | None:
    """A coordinate: a number, or text with a decimal point or a German decimal comma."""
    value = _scalar(value)
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Bad(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        result = float(value)
    else:
        text = str(value).strip()
        if not text:
            return None
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")
        try:
            if "_" in text:  # Python reads "5_3.55" as 53.55; a coordinate never has one
                raise ValueError(text)
            result = float(text)
        except ValueError:
            raise _Bad(f"{str(value)!r} is not a number") from None
    if not math.isfinite(result):
        raise _Bad(f"{value!r} is not a finite number")
    return result


def _date(value: Any) -> str | None:
    value = _scalar(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = text_value(value)
    if not text:
        return None
    return _date_text(text)


@lru_cache(maxsize=8192)  # the same dates recur across rows
def _date_text(text: str) -> str:
    for pattern, order in ((r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?", "ymd"),
                           (r"(\d{1,2})\.(\d{1,2})\.(\d{4})", "dmy"),
                           (r"(\d{4})/(\d{1,2})/(\d{1,2})", "ymd")):
        match = re.fullmatch(pattern, text)
        if match:
            parts = dict(zip(order, map(int, match.groups())))
            try:
                return dt.date(parts["y"], parts["m"], parts["d"]).isoformat()
            except ValueError:
                break
    raise _Bad(f"{text!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)")


def _postcode(value: Any) -> str | None:
    text = text_value(value)
    if text and text.isdigit() and len(text) == 4:
        text = text.zfill(5)  # a spreadsheet dropped the leading zero (01067 Dresden)
    return text


def _translations(value: Any) -> dict[str, dict[str, str]]:
    text = text_value(value)
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        raise _Bad("is not JSON (expected {\"en\": {\"description\": \"...\"}})") from None
    if not isinstance(parsed, dict) or not all(
            isinstance(v, dict) and all(isinstance(t, str) for t in v.values())
            for v in parsed.values()):
        raise _Bad("expected a JSON object {\"en\": {\"description\": \"...\"}}")
    # the rules of every format (HSDS reads its translation terms so): a language code as key
    # ("en", "pt-BR"), a field name, the text stripped, an empty one no translation
    out: dict[str, dict[str, str]] = {}
    for language, fields in parsed.items():
        if not _LANGUAGE_TAG.fullmatch(language):
            raise _Bad(f"{language[:40]!r} is no language code (en, ar, pt-BR, ...)")
        for field, text in fields.items():
            if not _FIELD_NAME.fullmatch(field):
                raise _Bad(f"{language}: {field[:40]!r} is no field name (name, description)")
            if text.strip():
                out.setdefault(language, {})[field] = text.strip()
    return out


_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def content_id(record: Mapping[str, Any]) -> str:
    """A stable source id for a row without an id column: a hash of the name and the point
    (to about 1 m), or of name + address + postcode for a row that is placed by geocoding."""
    if record.get("lat") is not None and record.get("lon") is not None:
        place = f"{float(record['lat']):.5f},{float(record['lon']):.5f}"
    else:
        place = "|".join(normalise(record.get(k) or "") for k in ("address", "postcode",
                                                                  "stadtteil"))
    digest = hashlib.sha1(f"{normalise(record.get('name') or '')}|{place}".encode())
    return "h:" + digest.hexdigest()[:20]


class RowMapper:
    """Turns one row (header -> value) into a mapped :class:`Candidate`."""

    def __init__(self, mapping: ColumnMapping, columns: Columns, *, country: str = "DE"
                 ) -> None:
        self.mapping, self.columns = mapping, columns
        # "8001" is Zürich's postcode, "01067" Dresden's: a lost zero only in Germany
        self._postcode = _postcode if country.upper() == "DE" else text_value
        # (field, cell text) -> (codes, items without a code)
        self._code_cache: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {}
        # (field, column, how the cell becomes the field) -- chosen once, used for every row
        self._plan = [(name, header, self._setter(name)) for name, header in
                      columns.fields.items()]
        # the organisation's details the file has columns for (most files: none)
        self._org_details = [name for name in columns.fields
                             if name.startswith("organization_")]

    def __call__(self, row: Mapping[str, Any], where: Where) -> Candidate:
        cand = Candidate(where, {})
        rec = cand.record
        for name, header, setter in self._plan:
            try:
                setter(rec, name, row.get(header), where, header, cand)
            except _Bad as exc:
                cand.problems.append(Problem(where.at(header), f"{exc} ({name})"
                                             if name != normalise(header) else str(exc)))
        for header, lang, name in self.columns.translations:
            value = text_value(row.get(header))
            if value:
                rec.setdefault("translations", {}).setdefault(lang, {})[name] = value
        details = {key[len("organization_"):]: value for key in self._org_details
                   if (value := rec.pop(key, None))}
        if details:
            if isinstance(rec.get("organization"), dict):
                rec["organization"].update(details)
            else:
                cand.warnings.append(Problem(where, "organisation details ("
                                             + ", ".join(sorted(details))
                                             + ") without an organisation name; left out"))
        street = rec.pop("address", None)
        house = (rec.pop("housenumber", None) or "") + (rec.pop("housenumber_suffix", None) or "")
        if street or house:
            rec["address"] = " ".join(filter(None, (street, house)))
        if not rec.get("categories") and self.mapping.default_categories:
            rec["categories"] = list(self.mapping.default_categories)
        if not rec.get("audiences") and self.mapping.default_audiences:
            rec["audiences"] = list(self.mapping.default_audiences)
        return cand

    # A setter takes (record, field, cell, row's Where, column, candidate) and sets the field
    # from the cell; problems are placed at ``row_where.at(header)`` (built only then: this
    # runs for every cell).
    def _setter(self, name: str) -> Callable[..., None]:
        if name in ("lat", "lon"):
            return _set_with(number)
        if name in LIST_FIELDS:
            return self._codes
        if name in CODED_FIELDS:
            return self._coded
        if name.startswith("organization_") and name != "organization_description":
            return _set_with(_normalised(_org_checks()[name]))
        return {"translations": _set_translations, "last_verified": _set_with(_date),
                "postcode": _set_with(self._postcode), "organization": _set_organization,
                "phone": self._phone}.get(name, _set_with(text_value))

    def _phone(self, rec: dict[str, Any], name: str, value: Any, *_: Any) -> None:
        phone = text_value(value)
        if phone and self.mapping.local_area_code and re.match(r"[2-9]", phone):
            phone = f"{self.mapping.local_area_code} {phone}"
        rec[name] = phone

    def _codes(self, rec: dict[str, Any], name: str, value: Any, row_where: Where, header: str,
               cand: Candidate) -> None:
        key = (name, value) if type(value) is str else None  # CSV cells repeat: remember
        known = self._code_cache.get(key) if key else None
        if known is None:
            table = self.mapping.terms[name]
            codes: list[str] = []
            unknown: list[str] = []
            for item in _items(value):
                found = table.get(normalise(item))
                if found is None:
                    unknown.append(item)
                    continue
                codes += [c for c in found if c not in codes]
            known = (tuple(codes), tuple(unknown))
            if key and len(self._code_cache) < 100_000:
                self._code_cache[key] = known
        codes_, unknown_ = known
        for item in unknown_:
            cand.warnings.append(Problem(row_where.at(header), f"{name}: no code for {item!r}; "
                                         "add it to data/mappings/categories.yaml or a "
                                         f"--mapping file ({name}: {{code: [{item}]}})"))
        rec[name] = list(codes_)

    def _coded(self, rec: dict[str, Any], name: str, value: Any, row_where: Where,
               header: str, cand: Candidate) -> None:
        text = text_value(value)
        if text is None:
            return
        found = self.mapping.values.get(name, {}).get(normalise(text))
        if found is None and text.lower() in CODED_FIELDS[name]:
            found = text.lower()
        if found is None:
            allowed = ", ".join(CODED_FIELDS[name])
            if name in STRICT_CODED:
                raise _Bad(f"{text!r} is not understood as {name} ({allowed})")
            cand.warnings.append(Problem(row_where.at(header), f"{name}: {text!r} is not "
                                         f"understood ({allowed}); stored as unknown"))
            return
        rec[name] = (found == "true") if name == "location_confidential" else found


def _set_with(convert: Callable[[Any], Any]) -> Callable[..., None]:
    def set_field(rec: dict[str, Any], name: str, value: Any, *_: Any) -> None:
        rec[name] = convert(value)
    return set_field


def _set_translations(rec: dict[str, Any], name: str, value: Any, *_: Any) -> None:
    rec["translations"] = {**_translations(value), **rec.get("translations", {})}


def _normalised(check: Callable[[str], str]) -> Callable[[Any], str | None]:
    """A cell as text, normalised by ``check`` (an organisation's website, e-mail or phone);
    a value it refuses is a problem of the row."""
    def convert(value: Any) -> str | None:
        text = text_value(value)
        if text is None:
            return None
        try:
            return check(text)
        except ValueError as exc:
            raise _Bad(str(exc)) from None
    return convert


def _org_checks() -> dict[str, Callable[[str], str]]:
    from .validate import normalise_email, normalise_phone, normalise_url

    return {"organization_website": normalise_url, "organization_email": normalise_email,
            "organization_phone": normalise_phone}


def _set_organization(rec: dict[str, Any], name: str, value: Any, *_: Any) -> None:
    org = text_value(value)
    rec[name] = {"name": org} if org else None


def finish(cand: Candidate, crs_hint: bool = True) -> Candidate:
    """Common last steps: refuse projected coordinates without a CRS, give rows without an id
    a content id."""
    rec = cand.record
    lat, lon = rec.get("lat"), rec.get("lon")
    if crs_hint and lat is not None and lon is not None and abs(lon) > 180 and abs(lat) > 90:
        cand.problems.append(Problem(cand.where.at("lat/lon"), f"coordinates ({lon}, {lat}) "
                                     "are not longitude/latitude; pass the CRS they are in, "
                                     "e.g. --crs EPSG:25832 (ETRS89 / UTM 32N, common in "
                                     "Hamburg's data)"))
    if not rec.get("source_id") and not cand.problems:
        rec["source_id"] = content_id(rec)
    return cand


def transformer(crs: str, file: str) -> Any:
    """A pyproj transformer from ``crs`` to WGS84 lon/lat (x, y order)."""
    try:
        source = CRS.from_user_input(crs)
    except CRSError as exc:
        raise ImportFailed([Problem(Where(file, field="crs"), f"unknown CRS {crs!r}: {exc}")]
                           ) from None
    return Transformer.from_crs(source, "EPSG:4326", always_xy=True)


# ---- CSV ------------------------------------------------------------------------------------
def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252; checked on the whole
    file so that a late umlaut cannot turn into mojibake."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    failures = []
    for encoding in ("utf-8-sig", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        offset = 0
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    decoder.decode(chunk)
                    offset += len(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError as exc:
            failures.append(f"{encoding}: byte {offset + exc.start}")
    raise ImportFailed([Problem(Where(str(path)), "cannot decode the file as UTF-8 or "
                                f"Windows-1252 ({'; '.join(failures)}); save it as UTF-8 or "
                                "set `encoding:` in a --mapping file")])


# Cyrillic text in a Windows-1251 or KOI8 file is valid Windows-1252 too, and reads as runs
# of accented Latin letters ("Öåíòð ï³äòðèìêè" for "Центр підтримки"). Words of four and
# more such letters in a row do not occur in the Latin languages Windows-1252 is for.
_MISREAD = re.compile("[\u00c0-\u00ff]{4,}")


def _refuse_misread_cyrillic(path: Path) -> None:
    """Refuse a file that only decoded as Windows-1252 when its text looks like Cyrillic in a
    Cyrillic 8-bit encoding (as a Ukrainian or Russian spreadsheet may save it): its names
    would be stored as mojibake."""
    found: list[tuple[int, str]] = []
    with path.open(encoding="cp1252", newline="") as fh:
        for number, line in enumerate(fh, 1):
            found += [(number, match) for match in _MISREAD.findall(line)]
            if len(found) >= 3:
                break
    if len(found) < 2:
        return
    line, word = found[0]
    raise ImportFailed([Problem(Where(str(path), field="encoding"), (
        f"the file is not UTF-8, and read as Windows-1252 its text looks like Cyrillic in "
        f"another encoding ({word!r} in line {line}): save it as UTF-8 (CSV UTF-8), or name "
        "its encoding in a --mapping file, e.g. `encoding: cp1251` (Windows Cyrillic) or "
        "`encoding: koi8_u`"))])


def detect_delimiter(sample: str) -> str:
    """``,``, ``;`` or tab: csv.Sniffer's guess when it splits the sample into rows of one
    width, else the candidate that does (Sniffer alone takes the ``,`` of ``53,55`` in a
    ``;`` file), else the one most frequent in the header."""
    lines = sample[:sample.rfind("\n") + 1] or sample

    def width(delimiter: str) -> int:
        try:
            rows = [r for r in csv.reader(io.StringIO(lines), delimiter=delimiter) if r][:50]
        except csv.Error:
            return 0
        widths = {len(r) for r in rows}
        return len(rows[0]) if len(widths) == 1 and rows and len(rows[0]) > 1 else 0

    try:
        sniffed: str | None = csv.Sniffer().sniff(lines, delimiters=",;\t").delimiter
    except csv.Error:
        sniffed = None
    if sniffed and width(sniffed):
        return sniffed
    best = max(",;\t", key=width)
    if width(best):
        return best
    header = lines.splitlines()[0] if lines else ""
    return max(",;\t", key=header.count)


def _refuse_ambiguous_columns(file: str, header: Sequence[str], columns: Columns) -> None:
    """A column name the mapping reads that the header holds twice: which one is meant? (A
    row would silently take the last.) Unused repeated columns are only listed as unused."""
    used = {h: name for name, h in columns.fields.items()}
    used.update((h, f"{name}_{lang}") for h, lang, name in columns.translations)
    problems = []
    for name, field_ in used.items():
        positions = [i + 1 for i, h in enumerate(header) if h == name]
        if len(positions) > 1:
            problems.append(Problem(Where(file, field=name), f"the header names this column "
                                    f"{len(positions)} times (columns "
                                    f"{', '.join(map(str, positions))}): which one holds "
                                    f"the {field_}?"))
    if problems:
        raise ImportFailed(problems)


class CsvReader:
    """Comma-, semicolon- or tab-separated text with a header row."""

    name = "csv"
    suffixes = (".csv", ".tsv", ".txt")

    def sniff(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in self.suffixes

    def read(self, path: Path, options: ImportOptions) -> Iterator[Candidate]:
        file = str(path)
        mapping = load_mapping(options.mapping)
        encoding = mapping.encoding or detect_encoding(path)
        if encoding == "cp1252" and not mapping.encoding:
            _refuse_misread_cyrillic(path)
        try:
            with path.open(encoding=encoding, newline="") as fh:
                sample = fh.read(_SAMPLE_CHARS)
        except (LookupError, UnicodeDecodeError) as exc:
            raise ImportFailed([Problem(Where(file), f"cannot read as {encoding}: {exc}")]
                               ) from None
        if not sample.strip():
            raise ImportFailed([Problem(Where(file), "the file is empty")])
        delimiter = mapping.delimiter or detect_delimiter(sample)
        project = transformer(options.crs, file) if options.crs else None
        with path.open(encoding=encoding, newline="") as fh:
            rows = csv.reader(fh, delimiter=delimiter, strict=True)
            try:
                header = [h.strip() for h in next(rows)]
            except csv.Error as exc:
                raise ImportFailed([Problem(Where(file, field="header"), f"line 1: broken "
                                            f"CSV header: {exc}")]) from None
            columns = mapping.resolve(header)
            _refuse_ambiguous_columns(file, header, columns)
            columns.require(file, header, place=True, by_address=options.address_geocoding)
            mapper = RowMapper(mapping, columns, country=options.region_country)
            note = ([Problem(Where(file), f"columns not used: {', '.join(columns.unused)}")]
                    if columns.unused else [])
            item = yielded = 0
            while True:
                line = rows.line_num + 1
                try:
                    cells = next(rows)
                except StopIteration:
                    break
                except csv.Error as exc:
                    item += 1
                    where = Where(file, item)
                    yielded += 1
                    hint = ("a cell longer than the reader takes" if "field larger" in str(exc)
                            else "check the quotes")
                    yield Candidate(where, {}, [Problem(where, f"broken CSV from line {line}: "
                                                        f"{exc} ({hint})")])
                    continue
                item += 1
                if not any(c.strip() for c in cells):
                    continue
                where = Where(file, item)
                yielded += 1
                if len(cells) > len(header):
                    yield Candidate(where, {}, [Problem(where, f"line {line}: {len(cells)} "
                                                        f"values but {len(header)} columns "
                                                        f"(an unquoted {delimiter!r} in a "
                                                        "value?)")])
                    continue
                cand = mapper(dict(zip(header, cells)), where)
                if project is not None and not cand.problems:
                    _project(cand, project)
                cand.warnings[:0], note = note, []
                yield finish(cand, crs_hint=project is None)
        if not yielded:
            raise ImportFailed([Problem(Where(file), "the file has a header but no data rows")])


def _project(cand: Candidate, project: Any) -> None:
    rec = cand.record
    if rec.get("lat") is not None and rec.get("lon") is not None:
        rec["lon"], rec["lat"] = project.transform(rec["lon"], rec["lat"])


register(CsvReader())
