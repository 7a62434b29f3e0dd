"""Open Referral HSDS: import 3.0 JSON, the 3.0 tabular datapackage and the 1.1 datapackage;
export HSDS 3.0 JSON.

Every input is first brought to one shape - HSDS 3.0's nested objects: a service_at_location
with its ``location`` and ``service``, the service with its ``organization`` - and one mapping
turns each service_at_location into a resource (``source_id`` = the service_at_location id).

- 3.0 JSON: a single object (service, service_at_location, organization with ``services``), a
  paginated list (``{"total_items", ..., "contents": [...]}``), a plain list of such objects,
  or ``tabular.json`` (``{"services.csv": [rows], ...}``). A service_at_location that only
  names its location/service by id is resolved against the other objects in the file.
- Tabular datapackages (PATH = ``datapackage.json`` or its directory): 3.0 tables are joined
  by their foreign keys; 1.1 tables are first renamed to their 3.0 counterparts
  (``services_at_location`` -> ``service_at_location``, ``physical_addresses`` ->
  ``addresses``, ``regular_schedules`` (weekday 1-7 = Monday-Sunday, ISO 8601) ->
  ``schedules``, ``accessibility_for_disabilities`` -> ``accessibility``, ``taxonomy`` +
  ``services_taxonomy`` -> taxonomy terms). A 1.1 service reaches its locations only through
  ``services_at_location.csv``; a service without a row there has no place and is reported.

What is mapped (and what is not) is listed in docs/importers.md, "Open Referral HSDS". Errors
name the file, the record (JSON: the n-th service_at_location; CSV: the data row) and the
field (JSON: its path, e.g. ``$.location.latitude``). A file that cannot be read at all - not
JSON, no HSDS objects, a datapackage naming a missing CSV, a CSV row with the wrong number of
fields - raises :class:`ImportFailed` before any record is produced.
"""
from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator, Mapping

import orjson
import phonenumbers
import yaml

from mapservice import hours, hsds
from mapservice.paths import DATA_DIR
from mapservice.search import fold, words
from mapservice.store import Store
from mapservice.taxonomy import default as default_taxonomy

from . import validate
from .pipeline import (GEOJSON_TYPE, Candidate, ImportFailed, ImportOptions, Problem, Where,
                       register)

MAPPING_FILE = DATA_DIR / "mappings" / "hsds_taxonomy.yaml"
WORDS_FILE = DATA_DIR / "mappings" / "categories.yaml"
STATUS = {"active": "published", "inactive": "archived", "defunct": "archived",
          "temporarily closed": "archived"}
# HSDS 1.1 table names -> their HSDS 3.0 counterparts.
V1_TABLES = {"services_at_location": "service_at_location", "regular_schedules": "schedules",
             "accessibility_for_disabilities": "accessibility", "taxonomy": "taxonomy_terms"}
_SNIFF = re.compile(r'"(service_at_locations?|services_at_location|total_items|location_type|'
                    r'organization_id|service_id|(services|service_at_location|'
                    r'services_at_location)\.csv)"')
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$")
_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<\s*(br|/p|/li|/div|/h\d)\s*/?>", re.I)
_ITEM = re.compile(r"<\s*li\b[^>]*>", re.I)
#: An HTML tag: "<p>", "</li>", "<br/>", "<a href=…>" (not "<6" or "< 30").
_HAS_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")
_DATED = ("byweekno", "bymonthday", "byyearday", "count", "until", "valid_from", "valid_to")
# The code of a term of mapservice_translations: field:language (description:en, name:pt-BR).
_TRANSLATION_CODE = re.compile(r"^([A-Za-z_]\w*):([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*)$")


# ---- mapping tables ----------------------------------------------------------------------
def _key(text: Any) -> str:
    """Case-, accent- and punctuation-insensitive form of a name or code."""
    return " ".join(words(fold(str(text))))


@dataclass(frozen=True)
class HSDSMapping:
    """The HSDS mapping tables (data/mappings/hsds_taxonomy.yaml + shared free-text words)."""

    terms: dict[str, dict[str, list[str]]]
    ignore: frozenset[str]
    words: dict[str, dict[str, list[str]]]
    languages: dict[str, str]
    accessibility_codes: dict[str, str]
    wheelchair: list[tuple[re.Pattern[str], str]]
    cost: list[tuple[re.Pattern[str], str]]


@lru_cache(maxsize=8)
def load_mapping(path: Path = MAPPING_FILE) -> HSDSMapping:
    """Read the mapping tables; ``path`` replaces the built-in HSDS file (``--mapping``)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    shared = yaml.safe_load(WORDS_FILE.read_text(encoding="utf-8")) if WORDS_FILE.is_file() \
        else {}
    tax = default_taxonomy()
    languages: dict[str, str] = {}
    for code, entry in tax.languages.items():
        names = [code, entry.get("native", ""), *(entry.get("labels") or {}).values()]
        languages.update({_key(n): code for n in names if n})
    for code, names in (shared.get("languages") or {}).items():
        languages.update({_key(n): code for n in names})
    languages.update({_key(k): v for k, v in (raw.get("languages") or {}).items()})
    shared_words: dict[str, dict[str, list[str]]] = {}
    for kind in ("categories", "audiences"):
        for code, names in (shared.get(kind) or {}).items():
            for name in names:
                shared_words.setdefault(_key(name), {}).setdefault(kind, []).append(code)
    terms = {_key(k): {kind: list(v.get(kind) or []) for kind in ("categories", "audiences")}
             for k, v in (raw.get("terms") or {}).items()}
    unknown = sorted({f"{kind} {code!r}" for mapped in terms.values()
                      for kind, codes in mapped.items() for code in codes
                      if code not in getattr(tax, kind)}
                     | {f"language {code!r}" for code in (raw.get("languages") or {}).values()
                        if code not in tax.languages})
    if unknown:
        raise ValueError(f"unknown code(s) of data/taxonomy.yaml: {', '.join(unknown)}")
    return HSDSMapping(
        terms=terms,
        ignore=frozenset(_key(t) for t in raw.get("ignore") or []),
        words=shared_words, languages=languages,
        accessibility_codes={_key(k): str(v)
                             for k, v in (raw.get("accessibility_codes") or {}).items()},
        wheelchair=[(re.compile(r["pattern"], re.I), str(r["value"]))
                    for r in raw.get("wheelchair") or []],
        cost=[(re.compile(r["pattern"], re.I), str(r["value"])) for r in raw.get("cost") or []])


# ---- small value helpers -----------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _plain(value: Any) -> str | None:
    """Text without HTML markup (HSDS descriptions are sometimes HTML lists). Only a text
    with a tag is read as HTML: "Kinder <6 Jahre & Eltern >30" and "&amp;" in plain text
    stay as they are."""
    text = _text(value)
    if text is None or "<" not in text or not _HAS_TAG.search(text):
        return text
    text = _ITEM.sub("\n- ", _BREAK.sub("\n", text))
    text = html.unescape(_TAG.sub("", text))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip() or None


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


#: The lists of objects the reader takes data from; one of another shape is an error (it used
#: to be passed over, losing e.g. the opening hours without a word).
_LIST_FIELDS = ("phones", "schedules", "languages", "addresses", "accessibility", "attributes",
                "cost_options")


# Texts the import reads (HSDS types them as strings): true, an object or a list there would be
# dropped or stored as "True" without a word. Numbers pass (a postcode, an id).
_TEXT_FIELDS = ("id", "name", "alternate_name", "description", "url", "email", "website",
                "status", "assured_date")
_ENTRY_TEXT_FIELDS = {"phones": ("number",),
                      "addresses": ("address_1", "city", "postal_code", "country")}


def _text_problems(obj: dict[str, Any], names: Iterable[str], at: Callable[[Any, str], Where],
                   label: str = "") -> list[Problem]:
    return [Problem(at(obj, name), f"'{label}{name}' must be text, not "
                    f"{validate.json_kind(obj[name])}")
            for name in names if isinstance(obj.get(name), (bool, dict, list))]


def _shape_problems(objects: Iterable[dict[str, Any]], at: Callable[[Any, str], Where]
                    ) -> list[Problem]:
    problems = []
    for obj in objects:
        problems += _text_problems(obj, _TEXT_FIELDS, at)
        for name in _LIST_FIELDS:
            value = obj.get(name)
            if value is None:
                continue
            if not isinstance(value, list):
                problems.append(Problem(at(obj, name), f"'{name}' must be a list of objects, "
                                        f"not {validate.json_kind(value)}"))
                continue
            for number, entry in enumerate(value, 1):
                if not isinstance(entry, dict):
                    problems.append(Problem(at(obj, name), f"entry {number} of '{name}' is "
                                            f"{validate.json_kind(entry)}, not an object"))
                elif name in _ENTRY_TEXT_FIELDS:
                    problems += _text_problems(entry, _ENTRY_TEXT_FIELDS[name],
                                               lambda _e, _f, n=name: at(obj, n),
                                               f"{name}[{number}].")
    return problems


def _number(value: Any) -> float | None:
    text = _text(value)
    return None if text is None else float(text)


# ---- the common shape: one link per service_at_location ----------------------------------
@dataclass
class _Link:
    """A service_at_location with its service, location and organisation (nested 3.0 form)."""

    sal: dict[str, Any]
    service: dict[str, Any] | None
    location: dict[str, Any] | None
    organization: dict[str, Any] | None
    siblings: int = 1  # service_at_locations of the same service
    problems: list[tuple[Any, str, str]] = field(default_factory=list)  # (object, field, why)


@dataclass
class _Source:
    """An input brought to links, with where every object came from."""

    file: str
    links: list[_Link] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # file-level warnings
    origins: dict[int, tuple[str, int | None, str, str]] = field(default_factory=dict)

    def place(self, obj: Any, origin: tuple[str, int | None, str, str]) -> None:
        self.origins[id(obj)] = origin

    def where(self, obj: Any, name: str | None, item: int | None) -> Where:
        """Where field ``name`` of ``obj`` is: JSON objects by their path inside the
        ``item``-th record, table rows by their own file and row."""
        file, row, kind, path = self.origins.get(id(obj), (self.file, None, "record", ""))
        label = ".".join(p for p in (path, name) if p) or None
        return Where(file, row if row is not None else item, kind, label)


def _kind(obj: Any) -> str:
    """Which HSDS object ``obj`` is (by the fields only that object has)."""
    if not isinstance(obj, dict):
        return "unknown"
    if "service_at_locations" in obj or ("status" in obj and "name" in obj):
        return "service"
    if isinstance(obj.get("location"), dict) or isinstance(obj.get("service"), dict) \
            or ("service_id" in obj and "location_id" in obj):
        return "service_at_location"
    if "services" in obj or ({"name", "description"} <= obj.keys() and obj.keys() & {
            "website", "tax_status", "legal_status", "year_incorporated", "locations",
            "organization_identifiers", "parent_organization_id", "funding", "programs"}):
        return "organization"
    if "location_type" in obj or "latitude" in obj or "addresses" in obj:
        return "location"
    if "taxonomy" in obj or "taxonomy_detail" in obj or "term_uri" in obj:
        return "taxonomy_term"
    if {"name", "description"} <= obj.keys() and obj.keys() & {"uri", "version"}:
        return "taxonomy"
    if "openapi_url" in obj or "profile" in obj:
        return "api"
    return "unknown"


def _from_json(data: Any, file: str) -> _Source:
    src = _Source(file)
    by_id: dict[str, dict[str, dict[str, Any]]] = {"service": {}, "location": {},
                                                    "organization": {}}

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, dict):
            src.place(obj, (file, None, "record", path))
            kind = _kind(obj)
            if kind in by_id and _text(obj.get("id")):
                by_id[kind].setdefault(str(obj["id"]), obj)
            for key, value in obj.items():
                walk(value, f"{path}.{key}")
        elif isinstance(obj, list):
            for i, value in enumerate(obj):
                walk(value, f"{path}[{i}]")

    walk(data, "$")
    if isinstance(data, dict) and isinstance(data.get("contents"), list):
        items = [(f"$.contents[{i}]", v) for i, v in enumerate(data["contents"])]
    elif isinstance(data, list):
        items = [(f"$[{i}]", v) for i, v in enumerate(data)]
    else:
        items = [("$", data)]
    wrong = [Problem(Where(file, field=path), "not an HSDS service, service_at_location or "
                     "organization (" + (f"fields: {', '.join(list(obj)[:8])}"
                                         if isinstance(obj, dict) else type(obj).__name__) + ")")
             for path, obj in items if _kind(obj) == "unknown"]
    if wrong:
        raise ImportFailed(wrong)

    def org_of(service: dict[str, Any], enclosing: dict[str, Any] | None) -> dict | None:
        if isinstance(service.get("organization"), dict):
            return service["organization"]
        return enclosing or by_id["organization"].get(str(service.get("organization_id")))

    broken: list[Problem] = []  # lists that hold what is not an object: the file is damaged

    def objects(value: Any, path: str) -> list[dict[str, Any]]:
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(v, dict) for v in value)):
            broken.append(Problem(Where(file, field=path), "must be a list of objects, not "
                                  + (validate.json_kind(value) if not isinstance(value, list)
                                     else "a list holding " + ", ".join(sorted({
                                         validate.json_kind(v) for v in value})))))
        return _list(value)

    def add_service(service: dict[str, Any], path: str, enclosing: dict | None) -> None:
        sals = objects(service.get("service_at_locations"), f"{path}.service_at_locations")
        if not sals:
            src.notes.append(Problem(Where(file, field=path), f"service {service.get('id')} "
                             f"({service.get('name')!r}) has no service_at_locations: it has "
                             "no place on the map and is not imported"))
        for sal in sals:
            add_sal(sal, service, org_of(service, enclosing), len(sals))

    def add_sal(sal: dict[str, Any], service: dict | None, org: dict | None,
                siblings: int = 1) -> None:
        location = sal.get("location") if isinstance(sal.get("location"), dict) else \
            by_id["location"].get(str(sal.get("location_id")))
        link = _Link(sal, service, location, org, siblings)
        if sal.get("location") is not None and not isinstance(sal["location"], dict):
            link.problems.append((sal, "location", "'location' must be an object, not "
                                  + validate.json_kind(sal["location"])))
        elif location is None:
            link.problems.append((sal, "location_id", f"location {sal.get('location_id')!r} "
                                  "is not in the file"))
        if service is None:
            link.problems.append((sal, "service_id", f"service {sal.get('service_id')!r} is "
                                  "not in the file"))
        src.links.append(link)

    for path, obj in items:
        kind = _kind(obj)
        if kind == "service":
            add_service(obj, path, None)
        elif kind == "service_at_location":
            service = obj.get("service") if isinstance(obj.get("service"), dict) else \
                by_id["service"].get(str(obj.get("service_id")))
            add_sal(obj, service, org_of(service, None) if service else None)
        elif kind == "organization" and objects(obj.get("services"), f"{path}.services"):
            for i, service in enumerate(_list(obj["services"])):
                add_service(service, f"{path}.services[{i}]", obj)
        elif not broken:
            src.notes.append(Problem(Where(file, field=path), f"an HSDS {kind} without "
                             "services: nothing to import from it"))
    if broken:
        raise ImportFailed(broken)
    return src


# ---- tables: datapackage CSVs or tabular.json ---------------------------------------------
def _read_csv(path: Path, resource: Mapping[str, Any], problems: list[Problem]
              ) -> list[dict[str, Any]]:
    dialect = resource.get("dialect") if isinstance(resource.get("dialect"), dict) else {}
    try:
        text = path.read_text(encoding=str(resource.get("encoding") or "utf-8-sig"))
    except (OSError, UnicodeDecodeError, LookupError) as exc:
        problems.append(Problem(Where(str(path)), f"cannot read the file: {exc}"))
        return []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True,
                        delimiter=str(dialect.get("delimiter") or ","),
                        quotechar=str(dialect.get("quoteChar") or '"'))
    rows: list[dict[str, Any]] = []
    number = 0
    try:
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            problems.append(Problem(Where(str(path)), "empty file: no header row"))
            return []
        for fields in reader:
            number += 1
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                problems.append(Problem(Where(str(path), number), f"the row has {len(fields)} "
                                        f"fields, the header has {len(header)}"))
                continue
            rows.append({h: (v if v.strip() else None) for h, v in zip(header, fields)})
    except csv.Error as exc:
        problems.append(Problem(Where(str(path), number + 1), f"broken CSV: {exc}"))
    return rows


def _package_tables(package: Path, src: _Source) -> dict[str, list[dict[str, Any]]]:
    """The tables a ``datapackage.json`` lists, read from the CSVs beside it."""
    try:
        doc = orjson.loads(package.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ImportFailed([Problem(Where(str(package)), f"not a readable datapackage.json: "
                                    f"{exc}")]) from None
    resources = doc.get("resources") if isinstance(doc, dict) else None
    if not isinstance(resources, list):
        raise ImportFailed([Problem(Where(str(package), field="resources"),
                                    "a datapackage needs a list of resources")])
    problems: list[Problem] = []
    tables: dict[str, list[dict[str, Any]]] = {}
    for i, res in enumerate(resources):
        rel = res.get("path") if isinstance(res, dict) else None
        where = Where(str(package), field=f"resources[{i}].path")
        if not isinstance(rel, str) or "://" in rel or PurePosixPath(rel).is_absolute() \
                or ".." in PurePosixPath(rel).parts:
            problems.append(Problem(where, f"{rel!r} is not a relative path to a CSV file "
                                    "inside the package"))
            continue
        csv_path = package.parent / rel
        if not csv_path.resolve().is_relative_to(package.parent.resolve()):
            # a symbolic link out of the package: "../" by another name
            problems.append(Problem(where, f"{rel!r} leads outside the package (a symbolic "
                                    "link)"))
            continue
        if not csv_path.is_file():
            problems.append(Problem(where, f"{rel}: no such file beside datapackage.json"))
            continue
        rows = _read_csv(csv_path, res, problems)
        for number, row in enumerate(rows, 1):
            src.place(row, (str(csv_path), number, "row", ""))
        tables[PurePosixPath(rel).stem] = rows
    if problems:
        raise ImportFailed(problems)
    return tables


def _json_tables(data: dict[str, Any], file: str, src: _Source
                 ) -> dict[str, list[dict[str, Any]]]:
    """``tabular.json``: ``{"services.csv": [row, ...], ...}``."""
    tables = {}
    for name, rows in data.items():
        rows = [{k: v for k, v in row.items()} for row in _list(rows)]
        for number, row in enumerate(rows, 1):
            src.place(row, (f"{file} [{name}]", number, "row", ""))
        tables[PurePosixPath(name).stem] = rows
    return tables


def _upgrade_v1(tables: dict[str, list[dict[str, Any]]], src: _Source) -> None:
    """Rename HSDS 1.1 tables and fields to their 3.0 counterparts, in place."""
    for old, new in V1_TABLES.items():
        if old in tables:
            tables[new] = tables.pop(old)
    for row in tables.get("organizations", []):
        row.setdefault("website", row.get("url"))
    for row in tables.get("schedules", []):
        day = _text(row.get("weekday"))
        if day is not None:  # 1.1: one weekday (1 = Monday ... 7 = Sunday) per row
            names = {str(i + 1): d for i, d in enumerate(hsds.RRULE_DAYS)}
            names.update({d.lower(): d for d in hsds.RRULE_DAYS})
            row["byday"] = names.get(day.lower()[:2] if not day.isdigit() else day, "?" + day)
            row["freq"] = "WEEKLY"
    for row in tables.get("accessibility", []):
        row["code"], row["description"] = row.get("accessibility"), row.get("details")
    for row in tables.get("languages", []):
        row.setdefault("name", row.get("language"))
    for row in tables.get("taxonomy_terms", []):
        row.setdefault("taxonomy", row.get("vocabulary"))
    addresses = tables.pop("physical_addresses", [])  # postal addresses are not visited
    for row in addresses:
        row["address_type"] = "physical"
    tables["addresses"] = addresses
    terms = {str(t.get("id")): t for t in tables.get("taxonomy_terms", [])}
    links = tables.setdefault("attributes", [])
    for row in tables.pop("services_taxonomy", []):
        links.append({"link_id": row.get("service_id"),
                      "taxonomy_term_id": row.get("taxonomy_id")})
    for service in tables.get("services", []):
        for term in str(service.get("taxonomy_ids") or "").split(","):
            if term.strip() in terms:
                links.append({"link_id": service.get("id"), "taxonomy_term_id": term.strip()})
    holidays = tables.pop("holiday_schedules", [])
    if holidays:
        src.notes.append(Problem(Where(src.origins.get(id(holidays[0]), (src.file,))[0]),
                                 f"{len(holidays)} holiday schedule(s) are not mapped: "
                                 "opening_hours gets no dated exceptions from HSDS"))


def _from_tables(tables: dict[str, list[dict[str, Any]]], src: _Source, v1: bool) -> _Source:
    """Join the tables into links (the nested 3.0 shape)."""
    if v1:
        _upgrade_v1(tables, src)

    def index(table: str, key: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for row in tables.get(table, []):
            if _text(row.get(key)):
                out.setdefault(str(row[key]).strip(), []).append(row)
        return out

    def by_id(table: str) -> dict[str, dict[str, Any]]:
        return {k: v[0] for k, v in index(table, "id").items()}

    services, locations, orgs = by_id("services"), by_id("locations"), by_id("organizations")
    terms = by_id("taxonomy_terms")
    idx = {(t, k): index(t, k) for t in ("phones", "schedules", "languages")
           for k in ("service_at_location_id", "service_id", "location_id", "organization_id")}
    attrs = index("attributes", "link_id")
    costs = index("cost_options", "service_id")
    addresses, access = index("addresses", "location_id"), index("accessibility", "location_id")

    def rows(table: str, key: str, value: Any, location_id: str | None = None,
             own_only: bool = False) -> list[dict[str, Any]]:
        found = idx[(table, key)].get(str(value), []) if value is not None else []
        if location_id is not None:  # a service's row for another of its locations is not ours
            found = [r for r in found if _text(r.get("location_id")) in (None, location_id)]
        if own_only:  # an organisation's own phone, not one of its services'
            found = [r for r in found if not (r.get("service_id") or r.get("location_id"))]
        return found

    def with_terms(obj: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for attr in attrs.get(str(obj.get("id")), []):
            term = terms.get(str(attr.get("taxonomy_term_id")))
            if term is not None:
                out.append({**attr, "taxonomy_term": term})
        return out

    def copy(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
        out = {**row, **extra}
        if id(row) in src.origins:
            src.place(out, src.origins[id(row)])
        return out

    sal_rows = tables.get("service_at_location", [])
    per_service = Counter(str(sal.get("service_id")) for sal in sal_rows)
    for service_id, service in services.items():
        if service_id not in per_service:
            src.notes.append(Problem(src.where(service, "id", None), f"service {service_id} "
                             f"({service.get('name')!r}) has no service_at_location row: it "
                             "has no place on the map and is not imported"))
    for sal in sal_rows:
        sid, lid = _text(sal.get("service_id")), _text(sal.get("location_id"))
        service, loc = services.get(str(sid)), locations.get(str(lid))
        link = _Link(sal, None, None, None, per_service.get(str(sid), 1))
        if service is None:
            link.problems.append((sal, "service_id", f"service {sid!r} is not in the services "
                                  "table"))
        else:
            org = orgs.get(str(service.get("organization_id")))
            if org is not None:
                org = copy(org, phones=rows("phones", "organization_id", org.get("id"),
                                            own_only=True))
            link.organization = org
            link.service = copy(
                service, phones=rows("phones", "service_id", sid, lid),
                schedules=rows("schedules", "service_id", sid, lid),
                languages=rows("languages", "service_id", sid, lid),
                cost_options=costs.get(str(sid), []),
                attributes=with_terms(service))
        if loc is None:
            link.problems.append((sal, "location_id", f"location {lid!r} is not in the "
                                  "locations table"))
        else:
            link.location = copy(
                loc, addresses=addresses.get(str(lid), []), accessibility=access.get(str(lid), []),
                phones=rows("phones", "location_id", lid),
                schedules=rows("schedules", "location_id", lid),
                languages=rows("languages", "location_id", lid), attributes=with_terms(loc))
        link.sal = copy(sal, phones=rows("phones", "service_at_location_id", sal.get("id")),
                        schedules=rows("schedules", "service_at_location_id", sal.get("id")),
                        attributes=with_terms(sal))
        src.links.append(link)
    return src


def _is_v1(tables: Mapping[str, Any]) -> bool:
    return bool(tables.keys() & {"services_at_location", "physical_addresses",
                                 "regular_schedules", "accessibility_for_disabilities"})


def _open(path: Path) -> _Source:
    """``path`` brought to links; :class:`ImportFailed` when it cannot be read as HSDS."""
    if path.is_dir():
        path = path / "datapackage.json"
        if not path.is_file():
            raise ImportFailed([Problem(Where(str(path)), "a directory needs a "
                                        "datapackage.json to be read as HSDS")])
    src = _Source(str(path))
    if path.name == "datapackage.json":
        tables = _package_tables(path, src)
        return _from_tables(tables, src, _is_v1(tables))
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ImportFailed([Problem(Where(str(path)), f"not JSON: {exc}")]) from None
    except OSError as exc:
        raise ImportFailed([Problem(Where(str(path)), f"cannot read the file: {exc}")]) \
            from None
    if isinstance(data, dict) and data and all(k.endswith(".csv") for k in data):
        tables = _json_tables(data, str(path), src)
        return _from_tables(tables, src, _is_v1(tables))
    return _from_json(data, str(path))


# ---- mapping one link to a record ---------------------------------------------------------
@dataclass
class _Mapper:
    """Maps links of one source to candidates."""

    src: _Source
    mapping: HSDSMapping

    def candidate(self, link: _Link, item: int) -> Candidate:
        src, sal = self.src, link.sal
        svc, loc, org = link.service or {}, link.location, link.organization

        def at(obj: Any, name: str) -> Where:
            return src.where(obj, name, item)

        where = src.where(sal, None, item)
        problems = [Problem(at(obj, name), why) for obj, name, why in link.problems]
        problems += _shape_problems((sal, svc, loc or {}, org or {}), at)
        warnings: list[Problem] = []
        rec: dict[str, Any] = {"source_id": _text(sal.get("id"))}
        if rec["source_id"] is None:
            problems.append(Problem(at(sal, "id"), "the service_at_location has no id"))
        name = _text(svc.get("name"))
        place = _text((loc or {}).get("name"))
        if name and place and link.siblings > 1 and place not in name:
            name = f"{name} ({place})"  # a service at several places: tell them apart
        rec["name"] = name
        rec["description"] = _plain(svc.get("description")) or _plain(sal.get("description"))
        rec["website"], rec["email"] = _text(svc.get("url")), _text(svc.get("email"))
        status = _text(svc.get("status"))
        rec["status"] = STATUS.get((status or "active").lower())
        if rec["status"] is None:  # a guess could publish what its source withdrew
            problems.append(Problem(at(svc, "status"), f"unknown status {status!r}; known: "
                                    + ", ".join(STATUS)))
        assured = _text(svc.get("assured_date"))
        if assured:
            try:
                rec["last_verified"] = dt.date.fromisoformat(assured[:10]).isoformat()
            except ValueError:
                warnings.append(Problem(at(svc, "assured_date"), f"{assured!r} is not a date"))
        country = None
        if loc is not None:
            country = self._place(loc, rec, problems, warnings, at)
        phone = next((p for obj in (sal, svc, loc or {}) for p in _list(obj.get("phones"))
                      if _text(p.get("number"))), None)
        if phone is not None:
            rec["phone"] = _phone(phone["number"], country, warnings, at(phone, "number"))
        rec["opening_hours"] = self._hours(
            next((s for s in (_list(sal.get("schedules")), _list(svc.get("schedules")),
                              _list((loc or {}).get("schedules"))) if s), []), warnings, at)
        rec["languages"] = self._languages(
            _list(svc.get("languages")) + _list((loc or {}).get("languages")), warnings, at)
        rec["cost"] = self._cost(svc, warnings, at)
        self._terms(svc, sal, loc or {}, rec, warnings, at)
        self._properties(svc, sal, loc or {}, rec, warnings, at)
        if org:
            rec["organization"] = self._organization(org, country, warnings, at)
        return Candidate(where, {k: v for k, v in rec.items() if v is not None}, problems,
                         warnings)

    def _place(self, loc: dict[str, Any], rec: dict[str, Any], problems: list[Problem],
               warnings: list[Problem], at: Callable[[Any, str], Where]) -> str | None:
        """Coordinates, address, wheelchair access and confidentiality of the location into
        ``rec``; returns the address's country (ISO 3166 alpha-2) when it gives one."""
        label = f"location {loc.get('id')} ({loc.get('name')!r})"
        try:
            lat, lon = _number(loc.get("latitude")), _number(loc.get("longitude"))
        except ValueError:
            problems.append(Problem(at(loc, "latitude"), f"{label}: coordinates "
                                    f"{loc.get('latitude')!r}, {loc.get('longitude')!r} are "
                                    "not numbers"))
            lat = lon = None
        else:
            if lat is None or lon is None:
                warnings.append(Problem(at(loc, "latitude"), f"{label} has no coordinates"))
            elif not -90 <= lat <= 90:
                problems.append(Problem(at(loc, "latitude"), f"{label}: latitude {lat:g} is "
                                        "outside -90..90"))
            elif not -180 <= lon <= 180:
                problems.append(Problem(at(loc, "longitude"), f"{label}: longitude {lon:g} "
                                        "is outside -180..180"))
            else:
                rec["lat"], rec["lon"] = lat, lon
        addresses = _list(loc.get("addresses"))
        address = next((a for a in addresses if a.get("address_type") == "physical"),
                       addresses[0] if addresses else None)
        country = None
        home = hsds.region()
        if address:
            street, city = _text(address.get("address_1")), _text(address.get("city"))
            postcode = _text(address.get("postal_code"))
            country = (_text(address.get("country")) or "").upper() or None
            if country and country != home["country"] and postcode:
                # A foreign postcode is no key for our gazetteer (US 20095 is Hamburg's too):
                # it stays in the address text only.
                city, postcode = " ".join(filter(None, (postcode, city))), None
            if street and city and city.casefold() not in street.casefold() \
                    and city != home["city"]:  # our own city goes without saying
                street = f"{street}, {city}"
            # a postcode without a street (our export writes address_1 ""): no address, not
            # the name of our own city as one
            rec["address"] = street or (city if city and city != home["city"] else None)
            rec["postcode"] = postcode
        rec["wheelchair"] = self._wheelchair(_list(loc.get("accessibility")), warnings, at)
        if any(self._own_term(a.get("taxonomy_term")) == ("location", hsds.APPROXIMATE)
               for a in _list(loc.get("attributes"))):
            rec["location_confidential"] = True
        return country

    def _hours(self, schedules: list[dict[str, Any]], warnings: list[Problem],
               at: Callable[[Any, str], Where]) -> str | None:
        """An OSM opening_hours string for HSDS schedules, or None (with a warning) when they
        say something it cannot hold - never a guess.

        Weekly rules (``byday`` + ``opens_at``/``closes_at``) are converted. A description
        in OSM syntax that means the same week is taken verbatim instead (it may add what
        RRULE cannot say, such as ``PH off``); a schedule with only a description counts when
        that description is OSM syntax and the only one, or agrees with the weekly rules.
        """
        weekly: set[tuple[int, int, int]] = set()
        described: set[str] = set()  # descriptions of schedules with weekly rules
        only: dict[str, dict[str, Any]] = {}  # OSM descriptions of description-only ones
        failed = False
        for schedule in schedules:
            description = _text(schedule.get("description"))
            try:
                rule = _weekly_rule(schedule)
                if not rule and description and not hours.is_valid(description):
                    raise _Unconvertible("description", "it has only a free-text "
                                                        "description")
            except _Unconvertible as exc:
                warnings.append(Problem(at(schedule, exc.field), f"schedule "
                                        f"{schedule.get('id')}: {exc}; opening_hours left "
                                        "empty"))
                failed = True
                continue
            weekly |= rule
            if description and rule:
                described.add(description)
            elif description:
                only[description] = schedule
        structured = hsds.osm_from_weekly(weekly)
        target = hsds.weekly_intervals(structured) if structured else None
        same = {d for d in described | only.keys() if target is not None
                and hsds.weekly_intervals(d) == target}
        for description, schedule in only.items():
            if (weekly and description not in same) or (not weekly and len(only) > 1):
                warnings.append(Problem(at(schedule, "description"), f"schedule "
                                        f"{schedule.get('id')}: {description!r} adds to the "
                                        "other schedules; opening_hours left empty"))
                failed = True
        if failed:
            return None
        if not weekly and only:
            return next(iter(only))
        return same.pop() if len(same) == 1 else structured

    def _languages(self, entries: list[dict[str, Any]], warnings: list[Problem],
                   at: Callable[[Any, str], Where]) -> list[str]:
        codes: list[str] = []
        seen: set[Any] = set()
        for entry in entries:
            key = _text(entry.get("id")) or id(entry)  # service and location may share one
            if key in seen:
                continue
            seen.add(key)
            code = None
            for value in (entry.get("code"), entry.get("name")):
                text = _text(value)
                if text:
                    code = self.mapping.languages.get(_key(text)) or \
                        self.mapping.languages.get(_key(re.split(r"[-_]", text)[0]))
                if code:
                    break
            if code is None:
                warnings.append(Problem(at(entry, "code" if entry.get("code") else "name"),
                                        f"language {entry.get('name') or entry.get('code')!r} "
                                        "is not one of ours (data/taxonomy.yaml); left out"))
            elif code not in codes:
                codes.append(code)
        return codes

    def _wheelchair(self, entries: list[dict[str, Any]], warnings: list[Problem],
                    at: Callable[[Any, str], Where]) -> str:
        found: set[str] = set()
        for entry in entries:
            value = self.mapping.accessibility_codes.get(_key(entry.get("code") or ""))
            text = " ".join(t for t in (_text(entry.get("description")),
                                        _text(entry.get("details"))) if t)
            for sentence in re.split(r"(?<=[.;!?])\s+", text) if value is None else []:
                value = next((v for pattern, v in self.mapping.wheelchair
                              if pattern.search(sentence)), None)
                if value:
                    break
            if value:
                found.add(value)
        if len(found) > 1:
            warnings.append(Problem(at(entries[0], "description"), "accessibility entries "
                                    "disagree about wheelchair access "
                                    f"({', '.join(sorted(found))}); left unknown"))
        return found.pop() if len(found) == 1 else "unknown"

    def _cost(self, svc: dict[str, Any], warnings: list[Problem],
              at: Callable[[Any, str], Where]) -> str:
        found: set[str] = set()
        for option in _list(svc.get("cost_options")):
            text = " ".join(t for t in (_text(option.get("option")),
                                        _text(option.get("amount_description"))) if t)
            value = self._match(self.mapping.cost, text)
            if value is None:
                try:
                    amount = _number(option.get("amount"))
                except ValueError:
                    amount = None
                value = None if amount is None else "free" if amount == 0 else "paid"
            if value:
                found.add(value)
        for name in ("fees", "fees_description"):
            value = self._match(self.mapping.cost, _text(svc.get(name)) or "")
            if value:
                found.add(value)
        if len(found) > 1:
            warnings.append(Problem(at(svc, "cost_options"), "cost options disagree "
                                    f"({', '.join(sorted(found))}); cost left unknown"))
        return found.pop() if len(found) == 1 else "unknown"

    @staticmethod
    def _match(patterns: list[tuple[re.Pattern[str], str]], text: str) -> str | None:
        return next((value for pattern, value in patterns if pattern.search(text)), None)

    @staticmethod
    def _own_term(term: Any) -> tuple[str, str] | None:
        """(kind, code) of a term of our own taxonomies, as the export writes them."""
        taxonomy = _taxonomy_of(term)
        if taxonomy not in hsds.TAXONOMIES or not _text(term.get("code")):
            return None
        return hsds.TAXONOMIES[taxonomy][0], str(term["code"]).strip()

    def _properties(self, svc: dict[str, Any], sal: dict[str, Any], loc: dict[str, Any],
                    rec: dict[str, Any], warnings: list[Problem],
                    at: Callable[[Any, str], Where]) -> None:
        """Translations and districts from the attribute values of our property taxonomies
        (mapservice/hsds.py, PROPERTY_TAXONOMIES): translations on the service (or the
        service_at_location), Stadtteil/Bezirk on the service_at_location (or the location).
        Nothing else sets them: a foreign file's address ``region`` is no Bezirk of ours."""
        translations: dict[str, dict[str, str]] = {}
        for attr in _list(svc.get("attributes")) + _list(sal.get("attributes")):
            term = attr.get("taxonomy_term")
            if _taxonomy_of(term) != hsds.TRANSLATIONS:
                continue
            code = _text(term.get("code")) or ""
            match = _TRANSLATION_CODE.match(code)
            field_ = match[1] if match else None
            value = (_plain if field_ == "description" else _text)(attr.get("value"))
            if match is None:
                warnings.append(Problem(at(term, "code"), f"translation term code {code!r} is "
                                        "not field:language (description:en); left out"))
            elif value is None:
                warnings.append(Problem(at(attr, "value"), f"translation {code} has no value; "
                                        "left out"))
            else:
                translations.setdefault(match[2], {})[field_] = value
        if translations:
            rec["translations"] = translations
        for attr in _list(sal.get("attributes")) + _list(loc.get("attributes")):
            term = attr.get("taxonomy_term")
            if _taxonomy_of(term) != hsds.DISTRICTS:
                continue
            code = (_text(term.get("code")) or "").lower()
            value = _text(attr.get("value"))
            if code not in hsds.DISTRICT_TERMS:
                warnings.append(Problem(at(term, "code"), f"district term code {code!r} is "
                                        f"not one of {', '.join(hsds.DISTRICT_TERMS)}; left "
                                        "out"))
            elif value is None:
                warnings.append(Problem(at(attr, "value"), f"{code} has no value; left out"))
            else:
                rec.setdefault(code, value)  # the first wins: the service_at_location's

    def _terms(self, svc: dict[str, Any], sal: dict[str, Any], loc: dict[str, Any],
               rec: dict[str, Any], warnings: list[Problem],
               at: Callable[[Any, str], Where]) -> None:
        tax = default_taxonomy()
        found: dict[str, list[str]] = {"categories": [], "audiences": []}
        for attr in _list(svc.get("attributes")) + _list(sal.get("attributes")):
            term = attr.get("taxonomy_term")
            if not isinstance(term, dict) or _taxonomy_of(term) in hsds.PROPERTY_TAXONOMIES:
                continue  # no classification: _properties reads them
            own = self._own_term(term)
            if own is not None and own[0] in found and own[1] in getattr(tax, own[0]):
                found[own[0]].append(own[1])
                continue
            keys = [_key(v) for v in (term.get("code"), term.get("name")) if _text(v)]
            if any(k in self.mapping.ignore for k in keys):
                continue
            mapped = next((self.mapping.terms[k] for k in keys if k in self.mapping.terms), None) \
                or next((self.mapping.words[k] for k in keys if k in self.mapping.words), None)
            if mapped is None:
                warnings.append(Problem(at(term, "name"), f"taxonomy term {term.get('name')!r} "
                                        f"(code {term.get('code')!r}, taxonomy "
                                        f"{term.get('taxonomy')!r}) is not mapped to a "
                                        "category; add it to data/mappings/hsds_taxonomy.yaml"))
                continue
            for kind, codes in mapped.items():
                found[kind] += codes
        rec["categories"] = list(dict.fromkeys(found["categories"]))
        rec["audiences"] = list(dict.fromkeys(found["audiences"]))

    def _organization(self, org: dict[str, Any], country: str | None,
                      warnings: list[Problem], at: Callable[[Any, str], Where]
                      ) -> dict[str, Any] | None:
        name = _text(org.get("name"))
        if name is None:
            warnings.append(Problem(at(org, "name"), "organization without a name; left out"))
            return None
        out: dict[str, Any] = {"name": name, "source_id": _text(org.get("id")),
                               "description": _plain(org.get("description"))}
        phone = next((_phone(p["number"], country, warnings, at(p, "number"))
                      for p in _list(org.get("phones")) if _text(p.get("number"))), None)
        for key, value, check in (("website", _text(org.get("website")), validate.normalise_url),
                                  ("email", _text(org.get("email")), validate.normalise_email),
                                  ("phone", phone, validate.normalise_phone)):
            if value:
                try:
                    out[key] = check(value)
                except ValueError as exc:
                    warnings.append(Problem(at(org, key), f"organization {key}: {exc}; left out"))
        return {k: v for k, v in out.items() if v is not None}


def _taxonomy_of(term: Any) -> str | None:
    """The name of a taxonomy term's taxonomy (``taxonomy``, else ``taxonomy_detail.name``)."""
    if not isinstance(term, dict):
        return None
    detail = term.get("taxonomy_detail")
    return _text(term.get("taxonomy")) or \
        (_text(detail.get("name")) if isinstance(detail, dict) else None)


def _phone(value: Any, country: str | None, warnings: list[Problem], where: Where
           ) -> str | None:
    """A phone number, made international with the address's country: validation reads a
    national number as German, which would turn a US number into a wrong German one."""
    number = (_text(value) or "").strip("\"'").strip()
    if not number or not country or number.startswith(("+", "00")):
        return number or None
    try:
        parsed = phonenumbers.parse(number, country)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed):
        warnings.append(Problem(where, f"{number!r} is not a possible phone number in "
                                f"{country}; left out"))
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


class _Unconvertible(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.field = name


def _minute(value: Any, name: str) -> int:
    text = _text(value)
    match = _TIME.match(text or "")
    if not match:
        raise _Unconvertible(name, f"{name} {text!r} is not a local time (HH:MM[:SS])")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 24 or minute > 59 or second or (hour == 24 and minute):
        raise _Unconvertible(name, f"{name} {text!r} is not a whole minute of the day")
    return hour * 60 + minute


def _weekly_rule(schedule: Mapping[str, Any]) -> set[tuple[int, int, int]]:
    """The weekly intervals of one HSDS schedule; empty for a description-only schedule;
    :class:`_Unconvertible` when it is not a plain weekly rule."""
    byday, opens, closes = (_text(schedule.get(k)) for k in ("byday", "opens_at", "closes_at"))
    if not (byday or opens or closes):
        return set()
    freq = (_text(schedule.get("freq")) or "WEEKLY").upper()
    if freq != "WEEKLY":
        raise _Unconvertible("freq", f"freq {freq} is not weekly")
    if _text(schedule.get("interval")) not in (None, "1", "1.0"):
        raise _Unconvertible("interval", f"interval {schedule['interval']} is not every week")
    for name in _DATED:
        if _text(schedule.get(name)) is not None:
            raise _Unconvertible(name, f"{name} ({schedule[name]}) limits it to certain "
                                       "dates or weeks")
    if not byday:
        raise _Unconvertible("byday", "no byday: the days are unknown")
    days = [d.strip().upper() for d in byday.split(",") if d.strip()]
    unknown = [d for d in days if d not in hsds.RRULE_DAYS]
    if unknown:
        raise _Unconvertible("byday", f"byday {', '.join(unknown)} is not a weekday")
    start, end = _minute(opens, "opens_at"), _minute(closes, "closes_at")
    if end <= start:  # closes after midnight ("00:00" = end of the day)
        end += hsds.DAY_MINUTES
    out: set[tuple[int, int, int]] = set()
    for day in days:
        index = hsds.RRULE_DAYS.index(day)
        out.add((index, start, min(end, hsds.DAY_MINUTES)))
        if end > hsds.DAY_MINUTES:
            out.add(((index + 1) % 7, 0, end - hsds.DAY_MINUTES))
    return out


# ---- the reader ---------------------------------------------------------------------------
class HSDSReader:
    """Open Referral HSDS 3.0 JSON and tabular datapackages (3.0 and 1.1)."""

    name = "hsds"
    suffixes = (".json",)

    def sniff(self, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            path = path / "datapackage.json"
        if path.suffix.lower() != ".json" or not path.is_file():
            return False
        try:
            with path.open("rb") as fh:
                head = fh.read(65536).decode("utf-8", "ignore")
        except OSError:
            return False
        if GEOJSON_TYPE.search(head):  # (a service named "Feature" is no GeoJSON)
            return False
        return _SNIFF.search(head) is not None

    def read(self, path: Path, options: ImportOptions) -> Iterator[Candidate]:
        mapping_file = Path(options.mapping or MAPPING_FILE)
        try:
            mapping = load_mapping(mapping_file)
        except (OSError, yaml.YAMLError, re.error, ValueError, KeyError, TypeError,
                AttributeError) as exc:
            raise ImportFailed([Problem(Where(str(mapping_file)), f"not a usable HSDS mapping "
                                        f"file: {exc}")]) from None
        src = _open(Path(path))
        placed = []
        for link in src.links:
            if (link.location or {}).get("location_type") != "virtual":
                placed.append(link)
                continue
            src.notes.append(Problem(src.where(link.location, "location_type", None),
                                     f"service_at_location {link.sal.get('id')} is at a "
                                     "virtual location: no place on the map; not imported"))
        src.links = placed
        if not src.links:
            raise ImportFailed(src.notes or [Problem(Where(src.file), "no service_at_location "
                                                     "found: nothing to import")])
        mapper = _Mapper(src, mapping)
        for item, link in enumerate(src.links, 1):
            cand = mapper.candidate(link, item)
            if item == 1:
                cand.warnings[:0] = src.notes  # file-level notes travel with the first record
            yield cand


register(HSDSReader())


# ---- export ---------------------------------------------------------------------------------
def export_hsds(store: Store, out: Path, source: str | None = None, *,
                batch: int = 1000) -> int:
    """Write the published resources (of ``source``) to ``out`` as HSDS 3.0 JSON; returns how
    many.

    The file is one paginated list - the form HSDS 3.0 defines for the API's ``/services`` -
    of fully nested services (organization, service_at_locations with location, phones,
    schedules, languages, cost options, taxonomy terms as attributes; translations, Stadtteil
    and Bezirk as attribute values, see ``mapservice.hsds.PROPERTY_TAXONOMIES``). It is
    streamed, the page header after ``contents`` (JSON members have no order), through a
    temporary file so a failed export leaves no half file. Confidential resources carry only
    their approximate point and no address (the store's public rows are the source).
    """
    from .export import replacing, with_organizations  # how every export reads and writes

    taxonomy = default_taxonomy()
    count = 0
    with replacing(Path(out)) as fh:
        fh.write(b'{"contents":[')
        for hit, org in with_organizations(store, source, batch):
            fh.write((b",\n" if count else b"\n") + orjson.dumps(
                hsds.service(hit, org, taxonomy)))
            count += 1
        header = hsds.page_header(size=count, total_items=count, page_number=1,
                                  per_page=max(count, 1))
        fh.write(b"\n]," + orjson.dumps(header)[1:] + b"\n")
    return count


__all__ = ["HSDSReader", "export_hsds", "load_mapping", "MAPPING_FILE"]
