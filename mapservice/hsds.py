"""Our model as Open Referral HSDS 3.0 objects: the one serialiser behind the HSDS export
(``importers.hsds.export_hsds``) and the HSDS read API (``/hsds``).

A resource is one service at one place, so each becomes one HSDS ``service`` with exactly one
``service_at_location`` and one ``location``. The service and its service_at_location share the
resource's public uid (HSDS ids are unique per table, so this is allowed), which lets both API
routes find it with one ``store.get``; every other id (location, phone, schedule, ...) is a
UUID derived from the resource uid, so it is stable across exports.

Categories and audiences travel as HSDS ``attributes`` that link taxonomy terms of our own
taxonomies (``mapservice``, ``mapservice_audiences``); a confidential location carries the term
``approximate`` of ``mapservice_location`` and never an address or its exact point. Opening
hours become weekly ``schedules`` (``byday`` + ``opens_at``/``closes_at``) whenever the OSM
expression is a plain weekly pattern; the verbatim OSM string rides along in each schedule's
``description`` so a round trip keeps details RRULE cannot say (``PH off``).

What HSDS 3.0 has no field for - translations of the texts, Stadtteil and Bezirk - travels as
attributes with a ``value`` (see :data:`PROPERTY_TAXONOMIES`), so an export imports back whole
and still validates.

No ``flask`` here: the exporter runs without a request.
"""
from __future__ import annotations

import datetime as dt
import math
import uuid
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

from opening_hours import State

from . import hours
from .urls import to_uri
from .store import Hit
from .taxonomy import Taxonomy

HSDS_VERSION = "3.0"
OPENAPI_URL = ("https://raw.githubusercontent.com/openreferral/specification/3.0/schema/"
               "openapi.json")
# Fixed namespace for the ids we derive (uuid5): the same resource gets the same ids forever.
NAMESPACE = uuid.UUID("6f1c2d0e-59b4-4d0c-9a63-2f4c1e8a7b11")
# The place every address is in: mapservice serves one city (settings REGION_CITY,
# REGION_STATE, REGION_COUNTRY; these are their defaults).
REGION = {"city": "Hamburg", "state_province": "Hamburg", "country": "DE"}


def region() -> dict[str, str]:
    """The HSDS address fields of the service's city: from the app's settings, or
    :data:`REGION` outside an app (e.g. a library use of the importers)."""
    from flask import current_app, has_app_context

    if not has_app_context():
        return dict(REGION)
    config = current_app.config
    return {"city": config.get("REGION_CITY", REGION["city"]),
            "state_province": config.get("REGION_STATE", REGION["state_province"]),
            "country": str(config.get("REGION_COUNTRY", REGION["country"])).upper()}
CURRENCY = "EUR"

RRULE_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
OSM_DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
DAY_MINUTES = 24 * 60

# Our taxonomies: HSDS name -> (model field, description). Terms of the first two are the codes
# of data/taxonomy.yaml; the third holds flags about a location.
TAXONOMIES: dict[str, tuple[str, str]] = {
    "mapservice": ("categories", "Kinds of community resilience resources (mapservice "
                                 "categories, data/taxonomy.yaml)."),
    "mapservice_audiences": ("audiences", "Who a resource is meant for (mapservice "
                                          "audiences, data/taxonomy.yaml)."),
    "mapservice_location": ("location", "Facts about a location."),
}
APPROXIMATE = "approximate"

# Facts of a resource that HSDS 3.0 has no field for. HSDS attaches attributes to any object,
# either as classifications or as properties: an attribute links a taxonomy term that names the
# property and carries the property's text in its ``value``. That is standard HSDS 3.0 (it
# validates, and any HSDS reader keeps it), where an extension member ("x-translations") would
# be dropped by readers that only know the schema, and where ``metadata`` is a change log, not
# content. HSDS 3.0 has no multilingual text of its own; its ``languages`` say which languages
# a service is *offered* in (our ``languages``), not in which languages its texts are written.
#
# - mapservice_translations: one term per translated field and language, code
#   ``field:language`` (``description:en``, the key OpenStreetMap uses), on the service.
# - mapservice_districts: the terms ``stadtteil`` and ``bezirk``, on the service_at_location
#   (our resource; for a confidential resource, too, which has no address). The Bezirk is also
#   written as the address's ``region`` for readers that do not know our taxonomy; the importer
#   reads districts only from these attributes, so another publisher's ``region`` never becomes
#   a Bezirk.
#
# They are not in TAXONOMIES: those are the classifications the API lists and filters services
# by; these are names of free-text properties. Every attribute carries its term and the term's
# taxonomy in full (``taxonomy_detail``), so the data describes itself.
TRANSLATIONS = "mapservice_translations"
DISTRICTS = "mapservice_districts"
PROPERTY_TAXONOMIES: dict[str, str] = {
    TRANSLATIONS: "Translations of a service's texts. The term's code is field:language "
                  "(for example description:en, ISO 639-1); the attribute's value is the "
                  "translated text.",
    DISTRICTS: "The districts of the city a service at a location is in (Stadtteil: quarter, "
               "Bezirk: borough). The attribute's value is the district's name.",
}
DISTRICT_TERMS = {"stadtteil": ("Stadtteil", "The quarter (Stadtteil) the place is in; the "
                                             "attribute's value is its name."),
                  "bezirk": ("Bezirk", "The borough (Bezirk) the place is in; the attribute's "
                                       "value is its name.")}
LOCATION_TERMS = {APPROXIMATE: ("Approximate location",
                                "The location is confidential (for example a shelter): the "
                                "point is only the centre of an area of about 1 km and no "
                                "address is given.")}

# Our cost and wheelchair values as HSDS text; importers/hsds.py reads them back through the
# patterns in data/mappings/hsds_taxonomy.yaml.
COST_OPTIONS = {"free": ("Free of charge", 0), "reduced": ("Reduced fee", None),
                "paid": ("Paid", None)}
WHEELCHAIR_TEXT = {"yes": "Wheelchair accessible.", "limited": "Limited wheelchair access.",
                   "no": "Not wheelchair accessible."}

# Weeks (Mondays) without a nationwide German public holiday or a DST change, spread over the
# year and over the weeks of a month: an expression that opens the same in all of them is a
# plain weekly pattern ("Mo[1]", "Jan-Mar", "week 1-53/2" are not).
_REFERENCE_WEEKS = (dt.date(2024, 1, 8), dt.date(2024, 2, 5), dt.date(2024, 2, 12),
                    dt.date(2024, 7, 15), dt.date(2024, 9, 2), dt.date(2024, 11, 25))

Weekly = frozenset  # of (weekday 0=Monday, start minute, end minute <= 1440)


def derived_id(*parts: object) -> str:
    """A stable UUID for an HSDS object we derive from our data (``derived_id("phone", uid)``)."""
    return str(uuid.uuid5(NAMESPACE, ":".join(map(str, parts))))


def taxonomy_id(name: str) -> str:
    return derived_id("taxonomy", name)


def term_id(taxonomy_name: str, code: str) -> str:
    return derived_id("taxonomy_term", taxonomy_name, code)


# ---- opening hours <-> weekly rules --------------------------------------------------------
@lru_cache(maxsize=4096)
def weekly_intervals(opening_hours: str) -> Weekly | None:
    """The open intervals of an ordinary week, or None when ``opening_hours`` does not parse,
    has comments or "unknown" states, or is not the same every week.

    Intervals are split at midnight, so an evening rule ``Fr 20:00-02:00`` gives
    ``(4, 1200, 1440)`` and ``(5, 0, 120)``.
    """
    try:
        parsed = hours.parse(opening_hours)
    except hours.InvalidOpeningHours:
        return None
    found: Weekly | None = None
    for monday in _REFERENCE_WEEKS:
        start = dt.datetime.combine(monday, dt.time(), tzinfo=hours.TIMEZONE)
        week: set[tuple[int, int, int]] = set()
        for begin, end, state, comment in parsed.intervals(start, start + dt.timedelta(days=7)):
            if comment or state == State.UNKNOWN:
                return None
            if state != State.OPEN:
                continue
            week.update(_split_days(begin - start, end - start))
        if found is None:
            found = frozenset(week)
        elif found != week:
            return None
    return found


def _split_days(begin: dt.timedelta, end: dt.timedelta) -> Iterable[tuple[int, int, int]]:
    first, last = int(begin.total_seconds() // 60), int(end.total_seconds() // 60)
    while first < last:
        day = first // DAY_MINUTES
        stop = min(last, (day + 1) * DAY_MINUTES)
        yield day % 7, first - day * DAY_MINUTES, stop - day * DAY_MINUTES
        first = stop


def _merged(spans: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return tuple((a, b) for a, b in out)


def _by_day(weekly: Iterable[tuple[int, int, int]]) -> dict[int, tuple[tuple[int, int], ...]]:
    days: dict[int, list[tuple[int, int]]] = {}
    for day, start, end in weekly:
        days.setdefault(day, []).append((start, end))
    return {day: _merged(spans) for day, spans in days.items()}


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _day_list(days: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 4]`` -> ``Mo-Fr``; ``[1, 3]`` -> ``Tu,Th``."""
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(OSM_DAYS[r[0]] if len(r) == 1 else
                    f"{OSM_DAYS[r[0]]}{'-' if len(r) > 2 else ','}{OSM_DAYS[r[-1]]}"
                    for r in runs)


def _groups(weekly: Iterable[tuple[int, int, int]]) -> list[tuple[list[int], tuple]]:
    """Days with the same intervals, grouped, in week order."""
    groups: dict[tuple, list[int]] = {}
    for day, spans in sorted(_by_day(weekly).items()):
        groups.setdefault(spans, []).append(day)
    return sorted(((days, spans) for spans, days in groups.items()), key=lambda g: g[0][0])


def osm_from_weekly(weekly: Iterable[tuple[int, int, int]]) -> str | None:
    """A canonical OSM ``opening_hours`` string for weekly intervals (None when never open)."""
    groups = _groups(weekly)
    if not groups:
        return None
    if len(groups) == 1 and len(groups[0][0]) == 7 and groups[0][1] == ((0, DAY_MINUTES),):
        return "24/7"
    return "; ".join(_day_list(days) + " " + ",".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in spans)
                     for days, spans in groups)


def schedules(opening_hours: str | None, owner: str) -> list[dict[str, Any]]:
    """HSDS schedules for an OSM ``opening_hours`` string.

    A weekly pattern becomes one WEEKLY schedule per group of days with the same hours (one per
    interval); midnight as a closing time is ``00:00``, as HSDS data usually writes it. The OSM
    string itself is each schedule's ``description``; a pattern that is not weekly becomes a
    single schedule with only that description.
    """
    if not opening_hours:
        return []
    weekly = weekly_intervals(opening_hours)
    if not weekly:  # not weekly, or never open ("off", "Mo-Su off"): the string says it
        return [{"id": derived_id("schedule", owner, 0), "description": opening_hours}]
    out = []
    for days, spans in _groups(weekly):
        for start, end in spans:
            out.append({"id": derived_id("schedule", owner, len(out)), "freq": "WEEKLY",
                        "byday": ",".join(RRULE_DAYS[d] for d in days),
                        "opens_at": _hhmm(start) + ":00",
                        "closes_at": _hhmm(end % DAY_MINUTES) + ":00",
                        "description": opening_hours})
    return out


# ---- objects ----------------------------------------------------------------------------------
def _taxonomy_object(name: str) -> dict[str, Any]:
    description = TAXONOMIES[name][1] if name in TAXONOMIES else PROPERTY_TAXONOMIES[name]
    return {"id": taxonomy_id(name), "name": name, "description": description,
            "version": "1"}


def taxonomies() -> list[dict[str, Any]]:
    return [_taxonomy_object(name) for name in TAXONOMIES]


def _term(taxonomy_name: str, code: str, name: str, description: str) -> dict[str, Any]:
    return {"id": term_id(taxonomy_name, code), "code": code, "name": name,
            "description": description, "taxonomy": taxonomy_name,
            "taxonomy_id": taxonomy_id(taxonomy_name),
            "taxonomy_detail": _taxonomy_object(taxonomy_name), "language": "en"}


def _our_term(taxonomy: Taxonomy, name: str, code: str) -> dict[str, Any]:
    kind = TAXONOMIES[name][0]
    if kind == "location":
        return _term(name, code, *LOCATION_TERMS[code])
    label = taxonomy.label(kind, code, "en")
    entry = getattr(taxonomy, kind).get(code) or {}
    return _term(name, code, label, (entry.get("descriptions") or {}).get("en") or label)


def taxonomy_terms(taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Every term of our taxonomies: categories, audiences, location flags."""
    return [_our_term(taxonomy, name, code) for name, (kind, _) in TAXONOMIES.items()
            for code in (LOCATION_TERMS if kind == "location" else getattr(taxonomy, kind))]


def _attribute(owner: str, entity: str, term: dict[str, Any]) -> dict[str, Any]:
    return {"id": derived_id("attribute", owner, term["id"]), "link_id": owner,
            "link_entity": entity, "link_type": "taxonomy", "taxonomy_term_id": term["id"],
            "taxonomy_term": term}


def translation_code(field: str, language: str) -> str:
    """The term code of a translated field: ``description:en``."""
    return f"{field}:{language}"


def _property(owner: str, entity: str, term: dict[str, Any], value: str) -> dict[str, Any]:
    return {**_attribute(owner, entity, term), "value": value}


def translation_attributes(uid: str, translations: Any,
                           taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """The resource's translations (``{"en": {"description": ...}}``) as attributes of its
    service, one per language and field."""
    out = []
    for language, fields in (translations or {}).items():
        if not isinstance(fields, Mapping):
            continue
        label = taxonomy.label("languages", language, "en")
        for field, text in fields.items():
            if not isinstance(text, str) or not text.strip():
                continue
            term = _term(TRANSLATIONS, translation_code(field, language),
                         f"{field.capitalize()} in {label}",
                         f"The {field} in {label} (language code {language}); the "
                         "attribute's value is the text.")
            out.append(_property(uid, "service", term, text))
    return out


def district_attributes(props: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stadtteil and Bezirk of a resource as attributes of its service_at_location."""
    uid = props["uid"]
    return [_property(uid, "service_at_location", _term(DISTRICTS, code, *DISTRICT_TERMS[code]),
                      props[code])
            for code in DISTRICT_TERMS if isinstance(props.get(code), str) and props[code]]


def _datetime(value: Any) -> str | None:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:  # stored as UTC; SQLite returns it naive
        value = value.replace(tzinfo=dt.timezone.utc)
    # Whole seconds, as in the GeoJSON (and the stored Feature a search may read it from).
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _date(value: Any) -> str | None:
    if isinstance(value, (dt.date, str)) and value:
        return str(value)[:10]
    return None


def organization(org: Mapping[str, Any],
                 services: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """An HSDS organization from the store's organisation fields; ``services`` are its
    resources (uid, name) as minimal service objects."""
    out: dict[str, Any] = {"id": org["uid"], "name": org["name"],
                           "description": org.get("description") or ""}
    if org.get("website"):
        out["website"] = to_uri(org["website"])  # HSDS: format uri
    if org.get("email"):
        out["email"] = org["email"]
    if org.get("phone"):
        out["phones"] = [{"id": derived_id("phone", org["uid"]), "number": org["phone"]}]
    if services is not None:
        out["services"] = [{"id": s["uid"], "name": s["name"], "status": "active",
                            "organization_id": org["uid"]} for s in services]
    return out


def location(hit: Hit) -> dict[str, Any]:
    """The place of a resource. A confidential one gets only its approximate point (which the
    store already returns for it), a flag, and no street address (its postcode, which the API
    shows too, is kept: an area larger than the point's grid cell)."""
    props = hit.properties
    uid = props["uid"]
    loc_id = derived_id("location", uid)
    out: dict[str, Any] = {"id": loc_id, "location_type": "physical",
                           "latitude": hit.lat, "longitude": hit.lon}
    if props.get("location_confidential"):
        out["description"] = LOCATION_TERMS[APPROXIMATE][1]
        out["attributes"] = [_attribute(loc_id, "location", _term(
            "mapservice_location", APPROXIMATE, *LOCATION_TERMS[APPROXIMATE]))]
    if props.get("address") or props.get("postcode"):
        # (a confidential place's address is never read from the store; its postcode is public)
        out["addresses"] = [{"id": derived_id("address", uid), "location_id": loc_id,
                             "address_1": props.get("address") or "",
                             "postal_code": props.get("postcode") or "",
                             "address_type": "physical", **region()}]
        if props.get("bezirk"):  # for other readers; ours reads the district attributes
            out["addresses"][0]["region"] = props["bezirk"]
    text = WHEELCHAIR_TEXT.get(props.get("wheelchair") or "")
    if text:
        out["accessibility"] = [{"id": derived_id("accessibility", uid),
                                 "location_id": loc_id, "description": text}]
    return out


def service(hit: Hit, org: Mapping[str, Any] | None, taxonomy: Taxonomy, *,
            with_locations: bool = True) -> dict[str, Any]:
    """The fully nested HSDS service of one resource (HSDS ``/services/{id}``)."""
    props = hit.properties
    uid = props["uid"]
    out: dict[str, Any] = {"id": uid, "name": props["name"], "status": "active"}
    if props.get("description"):
        out["description"] = props["description"]
    if props.get("website"):
        out["url"] = to_uri(props["website"])  # HSDS: format uri
    if props.get("email"):
        out["email"] = props["email"]
    if _date(props.get("last_verified")):
        out["assured_date"] = _date(props["last_verified"])
    if _datetime(props.get("updated_at")):
        out["last_modified"] = _datetime(props["updated_at"])
    if org:
        out["organization_id"] = org["uid"]
        out["organization"] = organization(org)
    if props.get("phone"):
        out["phones"] = [{"id": derived_id("phone", uid), "service_id": uid,
                          "number": props["phone"]}]
    out["schedules"] = [{**s, "service_id": uid}
                        for s in schedules(props.get("opening_hours"), uid)]
    out["languages"] = [{"id": derived_id("language", uid, code), "service_id": uid,
                         "code": code, "name": taxonomy.label("languages", code, "en")}
                        for code in props.get("languages") or []]
    cost = COST_OPTIONS.get(props.get("cost") or "")
    if cost:
        option = {"id": derived_id("cost_option", uid), "service_id": uid, "option": cost[0]}
        if cost[1] is not None:
            option.update(amount=cost[1], currency=CURRENCY)
        out["cost_options"] = [option]
    out["attributes"] = [_attribute(uid, "service", _our_term(taxonomy, name, code))
                         for name, (kind, _) in TAXONOMIES.items() if kind != "location"
                         for code in props.get(kind) or []]
    out["attributes"] += translation_attributes(uid, props.get("translations"), taxonomy)
    if with_locations:
        out["service_at_locations"] = [_service_at_location(hit)]
    return out


def _service_at_location(hit: Hit) -> dict[str, Any]:
    uid = hit.properties["uid"]
    loc = location(hit)
    out = {"id": uid, "service_id": uid, "location_id": loc["id"], "location": loc}
    districts = district_attributes(hit.properties)
    if districts:
        out["attributes"] = districts
    return out


def service_at_location(hit: Hit, org: Mapping[str, Any] | None,
                        taxonomy: Taxonomy) -> dict[str, Any]:
    """The resource as an HSDS service_at_location with its location and (as HSDS's own
    examples do) its service nested."""
    return {**_service_at_location(hit),
            "service": service(hit, org, taxonomy, with_locations=False)}


def page_header(*, size: int, total_items: int, page_number: int,
                per_page: int) -> dict[str, Any]:
    """The header of an HSDS paginated list (the API's ``Page``); ``size`` is the number of
    items on this page."""
    total_pages = math.ceil(total_items / per_page) if per_page else 0
    return {"total_items": total_items, "total_pages": total_pages,
            "page_number": page_number, "size": size, "first_page": page_number == 1,
            "last_page": page_number >= total_pages, "empty": size == 0}


def page(contents: list[dict[str, Any]], *, total_items: int, page_number: int,
         per_page: int) -> dict[str, Any]:
    """An HSDS paginated list: the header, then ``contents``."""
    return {**page_header(size=len(contents), total_items=total_items,
                          page_number=page_number, per_page=per_page), "contents": contents}


def api_info(*, description: str, publisher: Mapping[str, Any] | None = None,
             openapi_url: str = OPENAPI_URL) -> dict[str, Any]:
    """The HSDS API root (``/``): the HSDS version and where the OpenAPI file that defines
    this API is (HSDS: "URL of the openapi JSON file which defines this API")."""
    out: dict[str, Any] = {"version": HSDS_VERSION, "openapi_url": openapi_url,
                           "description": description}
    if publisher:
        out["publisher"] = dict(publisher)
    return out


__all__ = ["HSDS_VERSION", "TAXONOMIES", "APPROXIMATE", "PROPERTY_TAXONOMIES", "TRANSLATIONS",
           "DISTRICTS", "DISTRICT_TERMS", "COST_OPTIONS", "WHEELCHAIR_TEXT",
           "derived_id", "term_id", "taxonomy_id", "translation_code", "translation_attributes",
           "district_attributes", "weekly_intervals", "osm_from_weekly",
           "schedules", "taxonomies", "taxonomy_terms", "organization", "location", "service",
           "service_at_location", "page_header", "page", "api_info"]
