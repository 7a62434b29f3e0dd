"""The OpenAPI 3.0 document of the read APIs (``/api/v1`` and the OGC API – Features under
``/ogc``), written as data, and its HTML reference page.

The document is built by :func:`build_document` from the same values the code validates against
(taxonomy codes, cost and wheelchair values, sort orders, formats, page sizes, the OGC
blueprint's parameters, collection and conformance classes), so an enum can never drift from
what the API accepts. Paths are absolute (the server is the site root): the OGC landing page
links here as its ``service-desc`` and claims conformance class ``oas30``, so the document
describes ``/ogc`` too. ``tests/test_openapi.py`` checks that every parameter the code accepts
is documented and vice versa, and runs schemathesis against a live server.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, render_template, request
from markupsafe import Markup, escape

from .. import __version__, ogc
from ..geojson import CSV_FIELDS
from ..http import json_response
from ..models import COSTS, WHEELCHAIR
from ..search import MAX_RADIUS_M, MAX_TEXT_LENGTH, SORTS
from ..taxonomy import Taxonomy
from . import FORMATS, _only, bp

OPENAPI_VERSION = "3.0.3"
API = "/api/v1"
OGC = "/ogc"
MAX_OFFSET = 1_000_000  # parse_search's bound for ``offset``; tests/test_openapi.py checks it
PROBLEM_JSON = "application/problem+json"
GEOJSON = "application/geo+json"
JSON = "application/json"
_NUMBER = r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?"
# What geojson.timestamp() writes: whole seconds, UTC, "Z".
UTC_SECONDS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
# The formats the OGC blueprint accepts for ``f`` (its ``_check_args`` calls): json everywhere,
# geojson on items too. tests/test_openapi.py checks them against the 400 the code answers.
OGC_FORMATS = ("json",)
OGC_ITEMS_FORMATS = ("json", "geojson")
# The component that documents each parameter the OGC blueprint accepts (ogc.ITEMS_PARAMS):
# a name added there without an entry here fails the build of the document.
OGC_PARAM_COMPONENTS = {
    "f": "ogc_f", "lang": "ogc_lang", "bbox": "ogc_bbox", "bbox-crs": "bbox_crs",
    "datetime": "ogc_datetime", "limit": "ogc_limit", "offset": "offset",
    "category": "category", "audience": "audience",
    "language": "language", "cost": "cost", "wheelchair": "wheelchair", "q": "q",
    "district": "district", "updated_since": "updated_since",
}
TAGS = (
    ("Resources", "Search and read the published resources (GeoJSON, JSON, CSV)."),
    ("Lookups", ("The taxonomy, the districts and a geocoder for postcodes and place names "
                 "(offline; street addresses only where the operator switched an online "
                 "geocoder on).")),
    ("OGC API – Features", ("The same resources as OGC API – Features, Part 1: Core with "
                            "GeoJSON (conformance classes `core`, `geojson`, `oas30`), for QGIS, "
                            "GDAL/OGR and other GIS clients. OGC's rules apply here: a `limit` "
                            "above the maximum is lowered to it, not refused, and problems also "
                            "carry OGC's `code` and `description`.")),
    ("HSDS 3.0", ("The same resources as Open Referral's Human Services Data Specification "
                  "3.0 (`/hsds`): services, their locations, the organisations that run them "
                  "and the taxonomies, for other human-services systems. Lists are pages "
                  "(`page`, `per_page`) with HSDS's page header; a parameter HSDS defines that "
                  "is not implemented here is a 400 naming it.")),
    ("This document", "The OpenAPI document and this reference page."),
)
HSDS = "/hsds"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _codes_param(name: str, codes: list[str], what: str) -> dict[str, Any]:
    return {
        "name": name, "in": "query", "required": False, "style": "form", "explode": True,
        "description": f"{what}. Repeat the parameter or separate codes by commas "
                       f"(`{name}=a,b`); a resource matches when it has any of them.",
        "schema": {"type": "array", "minItems": 1, "uniqueItems": True,
                   "items": {"type": "string", "enum": codes}},
    }


def _parameters(taxonomy: Taxonomy, page_size: int, max_page_size: int) -> dict[str, Any]:
    """Every parameter of the APIs, by component name."""
    return {
        "near": {
            "name": "near", "in": "query", "required": False,
            "description": "A point `lat,lon` (WGS84 degrees). Results carry `distance_m` and "
                           "are sorted by distance unless `sort` says otherwise.",
            "schema": {"type": "string", "pattern": f"^\\s*{_NUMBER}\\s*,\\s*{_NUMBER}\\s*$"},
            "example": "53.5511,9.9937",
        },
        "radius": {
            "name": "radius", "in": "query", "required": False,
            "description": "Only results within this many metres of `near` (requires `near`).",
            "schema": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                       "maximum": MAX_RADIUS_M},
            "example": 2000,
        },
        "bbox": {
            "name": "bbox", "in": "query", "required": False,
            "description": "Only results inside the box `minlon,minlat,maxlon,maxlat` "
                           "(WGS84 degrees).",
            "schema": {"type": "string",
                       "pattern": f"^\\s*{_NUMBER}(\\s*,\\s*{_NUMBER}){{3}}\\s*$"},
            "example": "9.9,53.5,10.1,53.6",
        },
        "q": {
            "name": "q", "in": "query", "required": False,
            "description": "Full-text search in the name, the description and the name of the "
                           "organisation that runs the place: every word must match the "
                           "beginning of a word (case, accents and umlaut spelling do not "
                           "matter; no query syntax).",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH},
            "example": "Sprachcafé",
        },
        "category": _codes_param("category", list(taxonomy.categories),
                                 "Category codes (see `/api/v1/categories`)"),
        "audience": _codes_param("audience", list(taxonomy.audiences), "Audience codes"),
        "language": _codes_param("language", list(taxonomy.languages),
                                 "Languages offered (ISO 639-1 codes)"),
        "cost": _codes_param("cost", list(COSTS), "Cost"),
        "wheelchair": _codes_param("wheelchair", list(WHEELCHAIR), "Wheelchair access"),
        "open_now": {
            "name": "open_now", "in": "query", "required": False,
            "description": "`true`: only places open now (by their opening hours, Hamburg "
                           "time); `false`: no restriction. Not together with `open_at`.",
            "schema": {"type": "boolean"},
        },
        "open_at": {
            "name": "open_at", "in": "query", "required": False,
            "description": "Only places open at this moment (ISO 8601 date-time; without an "
                           "offset it is Hamburg local time).",
            "schema": {"type": "string", "format": "date-time"},
            "example": "2025-05-06T17:30:00+02:00",
        },
        "district": {
            "name": "district", "in": "query", "required": False, "style": "form",
            "explode": True,
            "description": "Only places in one of these Stadtteile or Bezirke (names from "
                           "`/api/v1/districts`; case, accents and umlaut spelling do not "
                           "matter). Repeat the parameter or separate names by commas.",
            "schema": {"type": "array", "minItems": 1,
                       "items": {"type": "string", "minLength": 1}},
            "example": ["Altona"],
        },
        "updated_since": {
            "name": "updated_since", "in": "query", "required": False,
            "description": "Only listings changed at or after this ISO 8601 date or date-time.",
            "schema": {"anyOf": [{"type": "string", "format": "date"},
                                 {"type": "string", "format": "date-time"}]},
            "example": "2025-01-01",
        },
        "sort": {
            "name": "sort", "in": "query", "required": False,
            "description": "Order of the results: `distance` (needs `near`; the default when "
                           "`near` is given), `name`, or `verified` (most recently verified "
                           "first). Without `near` and `sort` the order is stable but "
                           "unspecified.",
            "schema": {"type": "string", "enum": list(SORTS)},
        },
        "limit": {
            "name": "limit", "in": "query", "required": False,
            "description": "Results per page.",
            "schema": {"type": "integer", "minimum": 1, "maximum": max_page_size,
                       "default": page_size},
        },
        "offset": {
            "name": "offset", "in": "query", "required": False,
            "description": "Results to skip (follow the `next` link instead of counting).",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        },
        "f": {
            "name": "f", "in": "query", "required": False,
            "description": "Output format; without it the `Accept` header decides "
                           "(default GeoJSON).",
            "schema": {"type": "string", "enum": list(FORMATS)},
        },
        "cluster_bbox": {
            "name": "bbox", "in": "query", "required": True,
            "description": "The area to count in, `minlon,minlat,maxlon,maxlat` (WGS84 degrees).",
            "schema": {"type": "string",
                       "pattern": f"^\\s*{_NUMBER}(\\s*,\\s*{_NUMBER}){{3}}\\s*$"},
            "example": "9.7,53.39,10.33,53.75",
        },
        "grid": {
            "name": "grid", "in": "query", "required": False,
            "description": "Cells along the box's width. Their height is their width times "
                           "the cosine of the service region's middle latitude (square on a Web "
                           "Mercator map there), at most 128 rows; anchored at -180/-90, so a "
                           "map panned at one zoom keeps its cells. The map asks for one cell "
                           "per ~80 px of its width.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 64, "default": 16},
        },
        "feature_f": {
            "name": "f", "in": "query", "required": False,
            "description": "Output format: a GeoJSON Feature (the only one).",
            "schema": {"type": "string", "enum": ["geojson"]},
        },
        "lang": {
            "name": "lang", "in": "query", "required": False,
            "description": "Language of the labels (default: from `Accept-Language`).",
            "schema": {"type": "string", "enum": list(taxonomy.ui_languages)},
        },
        "geocode_q": {
            "name": "q", "in": "query", "required": True,
            "description": "A five-digit Hamburg postcode (also inside a text such as `20095 "
                           "Hamburg`), or a Stadtteil or Bezirk name (or its first three or "
                           "more letters). Street addresses and organisation names are not "
                           "resolved by the gazetteer (an address without a postcode, or an "
                           "organisation, finds nothing there); search organisations with `q` "
                           "of `/api/v1/resources`. Only where the operator has switched the "
                           "online geocoder on (off by default) is a `q` the gazetteer does "
                           "not find sent to it, as typed.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH},
            "example": "22765",
        },
        "id": {
            "name": "id", "in": "path", "required": True,
            "description": "The resource's stable public id (a UUID).",
            "schema": {"type": "string"},
            "example": "46e750e7-dc8a-4a37-92cc-d1d204b39e7d",
        },
        # ---- OGC API – Features -------------------------------------------------------------
        "ogc_f": {
            "name": "f", "in": "query", "required": False,
            "description": "Output format (only JSON).",
            "schema": {"type": "string", "enum": list(OGC_FORMATS)},
        },
        "ogc_items_f": {
            "name": "f", "in": "query", "required": False,
            "description": "Output format: the answer is GeoJSON either way.",
            "schema": {"type": "string", "enum": list(OGC_ITEMS_FORMATS)},
        },
        "ogc_lang": {
            "name": "lang", "in": "query", "required": False,
            "description": "Language of titles, descriptions and messages (default: from "
                           "`Accept-Language`; a region is ignored, `en-GB` is `en`; "
                           "an unknown language is a 400).",
            "schema": {"type": "string", "enum": list(taxonomy.ui_languages)},
        },
        "ogc_bbox": {
            "name": "bbox", "in": "query", "required": False, "style": "form", "explode": False,
            "description": "Only features inside the box `minlon,minlat,maxlon,maxlat` "
                           "(CRS84: longitude and latitude in degrees). A minlon greater "
                           "than maxlon is a box that spans the antimeridian (minlon to 180 "
                           "and -180 to maxlon). Six numbers `minlon,minlat,minheight,"
                           "maxlon,maxlat,maxheight` are a box with heights: the places "
                           "have none, so its ground plan decides.",
            "schema": {"type": "array", "minItems": 4, "maxItems": 6,
                       "items": {"type": "number"}},
            "example": [9.9, 53.5, 10.1, 53.6],
        },
        "bbox_crs": {
            "name": "bbox-crs", "in": "query", "required": False,
            "description": "The CRS of `bbox`: only CRS84 (the default).",
            "schema": {"type": "string", "format": "uri", "enum": [ogc.CRS84],
                       "default": ogc.CRS84},
        },
        "ogc_datetime": {
            "name": "datetime", "in": "query", "required": False,
            "description": "The features whose last change (`updated_at`, whole seconds in "
                           "UTC) lies at an instant or within an interval, ends included: "
                           "`2026-05-01T08:00:00Z` (that second), `2026-05-01` (that day, "
                           "Hamburg time), `2026-05-01/2026-05-31`, `../2026-05-31` or "
                           "`2026-05-01/..` (open ends as `..` or empty). A time without an "
                           "offset is Hamburg time.",
            "schema": {"type": "string", "maxLength": 100},
            "example": "2026-05-01T00:00:00Z/..",
        },
        "ogc_limit": {
            "name": "limit", "in": "query", "required": False,
            "description": f"Features per page. A larger `limit` than {max_page_size} (the "
                           f"maximum) is not an error: it is lowered to {max_page_size}, as "
                           "OGC API – Features requires; the `next` link carries the limit "
                           "applied.",
            # No "maximum": a limit above it is clamped, not refused (see the description).
            "schema": {"type": "integer", "minimum": 1, "default": page_size},
        },
        "collectionId": {
            "name": "collectionId", "in": "path", "required": True,
            "description": f"The collection: only `{ogc.COLLECTION}`.",
            "schema": {"type": "string", "enum": [ogc.COLLECTION]},
        },
        "featureId": {
            "name": "featureId", "in": "path", "required": True,
            "description": "The resource's stable public id (a UUID).",
            "schema": {"type": "string"},
            "example": "46e750e7-dc8a-4a37-92cc-d1d204b39e7d",
        },
        **_hsds_parameters(page_size, max_page_size),
    }


def _hsds_parameters(page_size: int, max_page_size: int) -> dict[str, Any]:
    def query(name: str, description: str, schema: dict[str, Any], **extra: Any
              ) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": schema, **extra}

    return {
        "hsds_page": query(
            "page", "The page to return, from 1. Pages end at the 1,000,000th item: a page "
                    "beyond that is a 400.",
            {"type": "integer", "minimum": 1, "default": 1}),
        "hsds_per_page": query(
            "per_page", f"Items per page (at most {max_page_size}).",
            {"type": "integer", "minimum": 1, "maximum": max_page_size, "default": page_size}),
        "hsds_search": query(
            "search", "Full-text search, as `q` of `/api/v1/resources`.",
            {"type": "string", "maxLength": MAX_TEXT_LENGTH}, example="Sprachcafé"),
        "hsds_taxonomy_term_id": query(
            "taxonomy_term_id", "Only services with this term (an `id` of "
                                "`/hsds/taxonomy_terms`; location terms cannot filter).",
            {"type": "string"}),
        "hsds_taxonomy_id": query(
            "taxonomy_id", "Only items with a term of this taxonomy (an `id` of "
                           "`/hsds/taxonomies`).", {"type": "string"}),
        "hsds_modified_after": query(
            "modified_after", "Only services changed at or after this ISO 8601 date or "
                              "date-time.",
            {"anyOf": [{"type": "string", "format": "date"},
                       {"type": "string", "format": "date-time"}]}, example="2025-01-01"),
        "hsds_organization_id": query(
            "organization_id", "Only the services of this organisation (an `id` of "
                               "`/hsds/organizations`); an unknown id matches none.",
            {"type": "string"}),
        "hsds_id": {"name": "id", "in": "path", "required": True,
                    "description": "The item's id (a UUID for services, locations and "
                                   "organisations).", "schema": {"type": "string"}},
    }


RESOURCE_QUERY = ("near", "radius", "bbox", "q", "category", "audience", "language", "cost",
                  "wheelchair", "open_now", "open_at", "district", "updated_since", "sort",
                  "limit", "offset", "f")
#: /clusters: the filters of /resources, a required box and the grid; no order, page or format.
CLUSTER_QUERY = ("cluster_bbox", "grid", "q", "category", "audience", "language", "cost",
                 "wheelchair", "open_now", "open_at", "district", "updated_since")


def _ogc_params(names: tuple[str, ...], *, items: bool = False) -> list[str]:
    """Component names of the OGC query parameters ``names`` (in the code's order)."""
    components = {**OGC_PARAM_COMPONENTS, **({"f": "ogc_items_f"} if items else {})}
    return [components[name] for name in names]


def _labelled(codes: list[str], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """A list of ``{code, label}`` entries (plus ``extra`` properties)."""
    return {"type": "array", "items": {
        "type": "object", "required": ["code", "label", *required],
        "additionalProperties": False,
        "properties": {"code": {"type": "string", "enum": codes}, "label": {"type": "string"},
                       "description": _nullable({"type": "string"}), **extra}}}


def _place(level: str, description: str, *fields: str) -> dict[str, Any]:
    """One entry of the gazetteer as /districts and /geocode write it (``geocode.Place`` and
    ``geocode.Postcode``): exactly these members, all present."""
    string = {"type": "string", "minLength": 1}
    members: dict[str, Any] = {
        "type": {"type": "string", "enum": [level],
                 "description": "What kind of place: `bezirk`, `stadtteil`, `postcode` or "
                                "`address` (from the online geocoder)."},
        "id": {**string, "description": "Official number (Bezirk `02`, Stadtteil `0201`)."},
        "name": string,
        "bezirk": {**string, "description": "The Bezirk it lies in."},
        "stadtteil": {**string, "description": "The Stadtteil it lies in (mostly)."},
        "postcode": {"type": "string", "pattern": r"^\d{5}$"},
        "lat": {"type": "number", "minimum": -90, "maximum": 90,
                "description": "Centre, latitude (WGS84)."},
        "lon": {"type": "number", "minimum": -180, "maximum": 180,
                "description": "Centre, longitude (WGS84)."},
        "bbox": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"},
                 "description": "`[minlon, minlat, maxlon, maxlat]`"},
        "stadtteile": {"type": "array", "items": _ref("schemas", "Stadtteil"),
                       "description": "Its Stadtteile, by name."},
        "attribution": _nullable({"type": "string", "description": "The licence note the "
                                  "geocoding server sent (OSM data: ODbL; show it with the "
                                  "result)."}),
    }
    return {"type": "object", "description": description, "required": list(fields),
            "additionalProperties": False, "properties": {f: members[f] for f in fields}}


def _schemas(taxonomy: Taxonomy) -> dict[str, Any]:
    string, nstring = {"type": "string"}, _nullable({"type": "string"})
    codes = {name: {"type": "array", "items": {"type": "string", "enum": values}}
             for name, values in (("categories", list(taxonomy.categories)),
                                  ("audiences", list(taxonomy.audiences)),
                                  ("languages", list(taxonomy.languages)))}
    utc = {"type": "string", "format": "date-time", "pattern": UTC_SECONDS}
    properties = {
        "id": {**string, "description": "Stable public id (UUID)."},
        "slug": string,
        "name": string,
        "description": nstring,
        "translations": {"type": "object", "description": "Translated fields by language "
                         "code, e.g. `{\"en\": {\"description\": \"...\"}}`.",
                         "additionalProperties": {"type": "object"}},
        **codes,
        "cost": {"type": "string", "enum": list(COSTS)},
        "wheelchair": {"type": "string", "enum": list(WHEELCHAIR)},
        "opening_hours": {**nstring, "description": "OpenStreetMap `opening_hours` syntax."},
        "address": {**nstring, "description": "Null for a confidential location."},
        "postcode": nstring, "stadtteil": nstring, "bezirk": nstring, "phone": nstring,
        "email": nstring, "website": nstring,
        "organization": {**nstring, "description": "The organisation that runs it."},
        "location_confidential": {"type": "boolean"},
        "location_precision": {"type": "string", "enum": ["approximate"], "description":
                               "Present for a confidential location: the point is only the "
                               "centre of its area (about 1 km), the address is withheld."},
        "last_verified": _nullable({"type": "string", "format": "date"}),
        "updated_at": {**utc, "description": "When the listing last changed: UTC, whole "
                       "seconds, `YYYY-MM-DDTHH:MM:SSZ`."},
        "source": string,
        "distance_m": {"type": "number", "minimum": 0,
                       "description": "Metres from `near` (only when `near` is given)."},
    }
    # Every member but location_precision and distance_m is always there (null when empty).
    required = [name for name in properties if name not in ("location_precision", "distance_m")]
    link = {"type": "object", "required": ["rel", "href", "type"],
            "properties": {"rel": string, "href": string, "type": string, "title": string}}
    links = {"type": "array", "items": _ref("schemas", "Link")}
    problem = {
        "type": "object", "required": ["type", "title", "status"],
        "description": "RFC 9457 problem details.",
        "properties": {"type": string, "title": string,
                       "status": {"type": "integer", "minimum": 400, "maximum": 599},
                       "detail": string, "instance": string}}
    crs84 = {"type": "string", "enum": [ogc.CRS84]}
    return {
        "Link": link,
        "ResourceProperties": {"type": "object", "required": required, "properties": properties},
        "Point": {"type": "object", "required": ["type", "coordinates"],
                  "properties": {"type": {"type": "string", "enum": ["Point"]},
                                 "coordinates": {"type": "array", "minItems": 2, "maxItems": 3,
                                                 "items": {"type": "number"},
                                                 "description": "`[lon, lat]` (WGS84)"}}},
        "Feature": {"type": "object", "required": ["type", "id", "geometry", "properties"],
                    "properties": {"type": {"type": "string", "enum": ["Feature"]},
                                   "id": string, "geometry": _ref("schemas", "Point"),
                                   "properties": _ref("schemas", "ResourceProperties")}},
        "Clusters": {
            "type": "object", "required": ["type", "features", "numberMatched",
                                           "numberReturned"],
            "properties": {
                "type": {"type": "string", "enum": ["FeatureCollection"]},
                "features": {"type": "array", "items": {
                    "type": "object", "required": ["type", "geometry", "properties"],
                    "properties": {
                        "type": {"type": "string", "enum": ["Feature"]},
                        "geometry": {"type": "object", "required": ["type", "coordinates"],
                                     "properties": {
                                         "type": {"type": "string", "enum": ["Point"]},
                                         "coordinates": {"type": "array", "minItems": 2,
                                                         "maxItems": 2,
                                                         "items": {"type": "number"}}}},
                        "properties": {"type": "object", "required": ["count"],
                                       "properties": {"count": {"type": "integer",
                                                                "minimum": 1}}}}}},
                "numberMatched": {"type": "integer", "minimum": 0,
                                  "description": "Matches in the box: the sum of the counts."},
                "numberReturned": {"type": "integer", "minimum": 0,
                                   "description": "Cells in the answer."}},
        },
        "FeatureCollection": {
            "type": "object", "required": ["type", "features", "numberReturned", "links"],
            "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                           "features": {"type": "array", "items": _ref("schemas", "Feature")},
                           "numberReturned": {"type": "integer", "minimum": 0},
                           "links": links}},
        "ResourceItems": {
            "type": "object", "required": ["items", "numberReturned", "links"],
            "properties": {"items": {"type": "array", "items": {"allOf": [
                               _ref("schemas", "ResourceProperties"),
                               {"type": "object", "required": ["lat", "lon"],
                                "properties": {"lat": {"type": "number"},
                                               "lon": {"type": "number"}}}]}},
                           "numberReturned": {"type": "integer", "minimum": 0},
                           "links": links}},
        "ResourcesCsv": {"type": "string", "description": "UTF-8 CSV with a header row: "
                         + ", ".join(f"`{c}`" for c in CSV_FIELDS)
                         + ". Lists are joined by `;`."},
        "Problem": problem,
        "InvalidParameterProblem": {"allOf": [
            _ref("schemas", "Problem"),
            {"type": "object", "required": ["parameter"],
             "properties": {"parameter": {**string, "description": "The parameter at fault."},
                            "status": {"type": "integer", "enum": [400]}}}]},
        "Sources": {
            "type": "object", "required": ["sources"],
            "properties": {"sources": {"type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": string, "licence": nstring, "attribution": nstring,
                               "url": nstring}}}}},
        "Taxonomy": {
            "type": "object", "required": ["lang", "categories", "domains", "audiences",
                                           "languages"],
            "additionalProperties": False,
            "properties": {
                "lang": {"type": "string", "enum": list(taxonomy.ui_languages)},
                "categories": {"type": "array", "items": {
                    "type": "object", "required": ["code", "label", "domains"],
                    "additionalProperties": False,
                    "properties": {"code": {"type": "string", "enum": list(taxonomy.categories)},
                                   "label": string, "description": nstring,
                                   "domains": {"type": "array", "items": {
                                       "type": "string", "enum": list(taxonomy.domains)}},
                                   "icon": string, "color": string}}},
                "domains": _labelled(list(taxonomy.domains)),
                "audiences": _labelled(list(taxonomy.audiences)),
                "languages": _labelled(list(taxonomy.languages), ("native",),
                                       native={**string, "description": "The endonym."})}},
        "Bezirk": _place("bezirk", "A Bezirk (borough).",
                         "type", "id", "name", "lat", "lon", "bbox"),
        "Stadtteil": _place("stadtteil", "A Stadtteil (quarter) and its Bezirk.",
                            "type", "id", "name", "bezirk", "lat", "lon", "bbox"),
        "Postcode": _place("postcode", "A postcode area: its centre, its (main) Stadtteil and "
                                       "its Bezirk; `name` is the postcode.",
                           "type", "name", "postcode", "lat", "lon", "stadtteil", "bezirk"),
        "Address": _place("address", "An address found by the online geocoder (only where the "
                                     "operator has switched it on); `name` is the server's "
                                     "display name, `lat`/`lon` its point.",
                          "type", "name", "lat", "lon", "attribution"),
        "District": _place("bezirk", "A Bezirk with its Stadtteile.",
                           "type", "id", "name", "lat", "lon", "bbox", "stadtteile"),
        "Districts": {
            "type": "object", "required": ["districts"], "additionalProperties": False,
            "properties": {"districts": {"type": "array",
                                         "items": _ref("schemas", "District")}}},
        "GeocodeResults": {
            "type": "object", "required": ["query", "results"], "additionalProperties": False,
            "properties": {
                "query": {**string, "description": "`q` as understood (spaces normalised)."},
                "results": {"type": "array", "items": {
                    "oneOf": [_ref("schemas", name)
                              for name in ("Postcode", "Stadtteil", "Bezirk", "Address")],
                    "discriminator": {"propertyName": "type", "mapping": {
                        "postcode": "#/components/schemas/Postcode",
                        "stadtteil": "#/components/schemas/Stadtteil",
                        "bezirk": "#/components/schemas/Bezirk",
                        "address": "#/components/schemas/Address"}}}}}},
        # ---- OGC API – Features ---------------------------------------------------------------
        "OgcLandingPage": {
            "type": "object", "required": ["title", "description", "links"],
            "description": "Links to this document (`service-desc`), the conformance classes "
                           "(`conformance`) and the collections (`data`).",
            "properties": {"title": string, "description": string, "links": links}},
        "OgcConformance": {
            "type": "object", "required": ["conformsTo"],
            "properties": {"conformsTo": {"type": "array", "minItems": 1, "items": {
                "type": "string", "enum": list(ogc.CONFORMANCE)}}}},
        "OgcCollection": {
            "type": "object", "required": ["id", "title", "links", "itemType", "crs", "extent"],
            "properties": {
                "id": {"type": "string", "enum": [ogc.COLLECTION]},
                "title": string, "description": string, "links": links,
                "itemType": {"type": "string", "enum": ["feature"]},
                "crs": {"type": "array", "minItems": 1, "items": crs84},
                "extent": {"type": "object", "required": ["spatial"], "properties": {
                    "spatial": {"type": "object", "required": ["bbox", "crs"], "properties": {
                        "bbox": {"type": "array", "minItems": 1, "items": {
                            "type": "array", "minItems": 4, "maxItems": 4,
                            "items": {"type": "number"}}},
                        "crs": crs84}}}}}},
        "OgcCollections": {
            "type": "object", "required": ["links", "collections"],
            "properties": {"links": links, "collections": {
                "type": "array", "items": _ref("schemas", "OgcCollection")}}},
        "OgcFeatureCollection": {
            "type": "object",
            "required": ["type", "features", "links", "timeStamp", "numberReturned"],
            "properties": {
                "type": {"type": "string", "enum": ["FeatureCollection"]},
                "features": {"type": "array", "items": _ref("schemas", "Feature")},
                "links": {**links, "description": "`self`, `collection`, and `next`/`prev` "
                                                  "when there is such a page."},
                "timeStamp": {**utc, "description": "When the answer was made (UTC)."},
                "numberReturned": {"type": "integer", "minimum": 0},
                "numberMatched": {"type": "integer", "minimum": 0,
                                  "description": "Only on the last page (known there without "
                                                 "counting)."}}},
        "OgcFeature": {"allOf": [
            _ref("schemas", "Feature"),
            {"type": "object", "required": ["links"], "properties": {"links": links}}]},
        "OgcProblem": {"allOf": [
            _ref("schemas", "Problem"),
            {"type": "object", "properties": {
                "code": {**string, "description": "OGC exception code."},
                "description": {**string, "description": "Same as `detail`."}}}]},
        "OgcInvalidParameterProblem": {"allOf": [
            _ref("schemas", "InvalidParameterProblem"),
            {"type": "object", "required": ["code", "description"], "properties": {
                "code": {"type": "string", "enum": ["InvalidParameterValue"]},
                "description": {**string, "description": "Same as `detail`."}}}]},
        **_hsds_schemas(),
    }


def _headers() -> dict[str, Any]:
    string = {"schema": {"type": "string"}}
    return {
        "ETag": {**string, "description": "Weak validator of the body; send it back as "
                                          "`If-None-Match` to get a 304."},
        "Last-Modified": {**string, "description": "Newest change of any listing (resource "
                                                   "data only)."},
        "Cache-Control": {**string, "description": "`public, max-age=60` on success, "
                                                   "`no-store` on errors."},
        "Link": {**string, "description": "`<url>; rel=\"next\"` when there is a next page."},
        "Content-Language": {**string, "description": "The language of the labels."},
        "Retry-After": {"schema": {"type": "integer", "minimum": 1},
                        "description": "Seconds after which asking again may succeed."},
    }


def _ok(description: str, content: Mapping[str, Any], *, last_modified: bool = False,
        link: bool = False, language: bool = False) -> dict[str, Any]:
    headers = {name: _ref("headers", name) for name in ("ETag", "Cache-Control")}
    if last_modified:
        headers["Last-Modified"] = _ref("headers", "Last-Modified")
    if link:
        headers["Link"] = _ref("headers", "Link")
    if language:
        headers["Content-Language"] = _ref("headers", "Content-Language")
    return {"description": description, "headers": headers, "content": dict(content)}


def _responses() -> dict[str, Any]:
    problem = {PROBLEM_JSON: {"schema": _ref("schemas", "Problem")}}
    return {
        "NotModified": {"description": "Not modified: the copy named by `If-None-Match` or "
                                       "`If-Modified-Since` is current.",
                        "headers": {"ETag": _ref("headers", "ETag")}},
        "InvalidParameter": {"description": "A parameter is malformed, out of range or unknown "
                                            "(`parameter` names it).",
                             "content": {PROBLEM_JSON: {
                                 "schema": _ref("schemas", "InvalidParameterProblem")}}},
        "NotFound": {"description": "No such (published) resource.", "content": problem},
        "Unavailable": {"description": "The database is unavailable or the query took too "
                                       "long (statement timeout).", "content": problem},
        "GeocoderUnavailable": {
            "description": "The database is unavailable, or the online geocoder (only where it "
                           "is switched on) did not answer in time, could not be reached or "
                           "answered with an error, or is busy (the deployment asks it at "
                           "most once a second by default, and the next turns are taken; "
                           "then with `Retry-After`); `detail` names the cause.",
            "headers": {"Retry-After": _ref("headers", "Retry-After")},
            "content": problem},
        "TooManyGeocoderRequests": {
            "description": "This client address caused more online geocoder requests than "
                           "the deployment allows (`MAPSERVICE_GEOCODER_RATE_LIMIT`, by "
                           "default 20 a minute and 200 a day; answers of the offline "
                           "gazetteer and cached answers do not count).",
            "headers": {"Retry-After": _ref("headers", "Retry-After")},
            "content": problem},
        "OgcInvalidParameter": {
            "description": "A parameter is malformed, out of range or unknown (OGC "
                           "`InvalidParameterValue`; `parameter` names it).",
            "content": {PROBLEM_JSON: {"schema": _ref("schemas",
                                                      "OgcInvalidParameterProblem")}}},
        "OgcNotFound": {"description": "No such collection or (published) feature.",
                        "content": {PROBLEM_JSON: {"schema": _ref("schemas", "OgcProblem")}}},
    }


def _operation(operation_id: str, tag: str, summary: str, description: str,
               parameters: list[str], ok: dict[str, Any], *, not_found: str | None = None,
               invalid: str = "InvalidParameter", unavailable: str = "Unavailable",
               too_many: str | None = None) -> dict[str, Any]:
    """One GET operation; ``parameters`` are component names; ``not_found``, ``invalid``,
    ``too_many`` and ``unavailable`` name its 404, 400, 429 and 503 responses."""
    responses: dict[str, Any] = {"200": ok, "304": _ref("responses", "NotModified"),
                                 "400": _ref("responses", invalid)}
    if not_found:
        responses["404"] = _ref("responses", not_found)
    if too_many:
        responses["429"] = _ref("responses", too_many)
    responses["503"] = _ref("responses", unavailable)
    return {"tags": [tag], "operationId": operation_id, "summary": summary,
            "description": description,
            "parameters": [_ref("parameters", name) for name in parameters],
            "responses": responses}


def _ogc_operation(operation_id: str, summary: str, description: str, parameters: list[str],
                   ok: dict[str, Any], *, not_found: bool = False) -> dict[str, Any]:
    return _operation(operation_id, "OGC API – Features", summary, description, parameters, ok,
                      not_found="OgcNotFound" if not_found else None,
                      invalid="OgcInvalidParameter")


def _ogc_paths() -> dict[str, Any]:
    common = _ogc_params(ogc.COMMON_PARAMS)
    collection = f"{OGC}/collections/{{collectionId}}"

    def json_ok(description: str, schema: str, **kw: Any) -> dict[str, Any]:
        return _ok(description, {JSON: {"schema": _ref("schemas", schema)}}, **kw)

    return {
        f"{OGC}/": {"get": _ogc_operation(
            "ogcLandingPage", "OGC landing page",
            "Links to the API definition (this document), the conformance classes and the "
            "collections.", common, json_ok("The landing page.", "OgcLandingPage"))},
        f"{OGC}/conformance": {"get": _ogc_operation(
            "ogcConformance", "OGC conformance classes",
            "The conformance classes the service implements.", common,
            json_ok("The conformance declaration.", "OgcConformance"))},
        f"{OGC}/collections": {"get": _ogc_operation(
            "ogcCollections", "OGC collections",
            f"The feature collections: only `{ogc.COLLECTION}`.", common,
            json_ok("The collections.", "OgcCollections"))},
        collection: {"get": _ogc_operation(
            "ogcCollection", "OGC collection",
            "The collection: extent (the city's bounding box), CRS (CRS84 only), item type.",
            ["collectionId", *common], json_ok("The collection.", "OgcCollection",
                                               last_modified=True),
            not_found=True)},
        f"{collection}/items": {"get": _ogc_operation(
            "ogcItems", "OGC features",
            "A page of the published resources as GeoJSON. The filters are those of "
            "`/api/v1/resources` (same codes and rules). Page with `limit` and `offset` or "
            "follow the `next` link; `numberMatched` appears on the last page only. Any other "
            "parameter (also `datetime`) is a 400.",
            ["collectionId", *_ogc_params(ogc.ITEMS_PARAMS, items=True)],
            _ok("A page of features.", {GEOJSON: {"schema": _ref("schemas",
                                                                 "OgcFeatureCollection")}},
                last_modified=True),
            not_found=True)},
        f"{collection}/items/{{featureId}}": {"get": _ogc_operation(
            "ogcItem", "OGC feature", "One published resource as a GeoJSON Feature.",
            ["collectionId", "featureId", *_ogc_params(ogc.COMMON_PARAMS, items=True)],
            _ok("The feature.", {GEOJSON: {"schema": _ref("schemas", "OgcFeature")}},
                last_modified=True),
            not_found=True)},
    }


def _hsds_schemas() -> dict[str, Any]:
    """What the HSDS endpoints answer: HSDS 3.0's objects with the properties HSDS requires
    (the rest as HSDS defines it, not repeated here), and its page."""
    def thing(description: str, *required: str) -> dict[str, Any]:
        return {"type": "object", "description": description, "required": list(required),
                "properties": {name: {"type": "string"} for name in required}}

    def page(item: str) -> dict[str, Any]:
        count = {"type": "integer", "minimum": 0}
        return {"type": "object", "description": f"An HSDS page of `{item}` objects.",
                "required": ["total_items", "total_pages", "page_number", "size",
                             "first_page", "last_page", "empty", "contents"],
                "properties": {"total_items": count, "total_pages": count,
                               "page_number": {"type": "integer", "minimum": 1}, "size": count,
                               "first_page": {"type": "boolean"},
                               "last_page": {"type": "boolean"},
                               "empty": {"type": "boolean"},
                               "contents": {"type": "array", "items": _ref("schemas", item)}}}

    schemas = {
        "HsdsApiInfo": {"type": "object", "required": ["version", "openapi_url"],
                        "properties": {"version": {"type": "string"},
                                       "openapi_url": {"type": "string"},
                                       "description": {"type": "string"},
                                       "publisher": {"type": "object"}}},
        "HsdsService": thing("An HSDS 3.0 `service`: one published resource.",
                             "id", "name", "status"),
        "HsdsServiceAtLocation": thing("An HSDS 3.0 `service_at_location`: a resource at its "
                                       "place (an approximate area for a confidential one).",
                                       "id"),
        "HsdsOrganization": thing("An HSDS 3.0 `organization` that runs published resources.",
                                  "id", "name", "description"),
        "HsdsTaxonomy": thing("An HSDS 3.0 `taxonomy`.", "id", "name", "description"),
        "HsdsTaxonomyTerm": thing("An HSDS 3.0 `taxonomy_term`.", "id", "name", "description"),
    }
    for name in ("HsdsService", "HsdsServiceAtLocation", "HsdsOrganization", "HsdsTaxonomy",
                 "HsdsTaxonomyTerm"):
        schemas[f"{name}Page"] = page(name)
    return schemas


def _hsds_paths() -> dict[str, Any]:
    tag = "HSDS 3.0"
    paging = ["hsds_page", "hsds_per_page"]
    resource_filters = [*paging, "hsds_search", "hsds_taxonomy_term_id", "hsds_taxonomy_id",
                        "hsds_modified_after", "hsds_organization_id"]

    def ok(description: str, schema: str) -> dict[str, Any]:
        # Every /hsds answer carries the newest change of the resources as Last-Modified.
        return _ok(description, {JSON: {"schema": _ref("schemas", schema)}},
                   last_modified=True)

    def listed(op: str, what: str, schema: str, parameters: list[str], description: str
               ) -> dict[str, Any]:
        return {"get": _operation(op, tag, f"HSDS {what}", description, parameters,
                                  ok(f"A page of {what}.", f"{schema}Page"))}

    def one(op: str, what: str, schema: str) -> dict[str, Any]:
        return {"get": _operation(op, tag, f"One HSDS {what}", f"One {what} by its `id`.",
                                  ["hsds_id"], ok(f"The {what}.", schema),
                                  not_found="NotFound")}

    return {
        f"{HSDS}/": {"get": _operation(
            "hsdsApiInfo", tag, "HSDS API information",
            "The HSDS version this API implements and where HSDS's own OpenAPI file is.", [],
            ok("The API information.", "HsdsApiInfo"))},
        f"{HSDS}/services": listed(
            "hsdsServices", "services", "HsdsService", resource_filters,
            "The published resources as HSDS services, by the one search of the service."),
        f"{HSDS}/services/{{id}}": one("hsdsService", "service", "HsdsService"),
        f"{HSDS}/service_at_locations": listed(
            "hsdsServiceAtLocations", "services at locations", "HsdsServiceAtLocation",
            resource_filters, "The published resources with their places."),
        f"{HSDS}/service_at_locations/{{id}}": one(
            "hsdsServiceAtLocation", "service at a location", "HsdsServiceAtLocation"),
        f"{HSDS}/organizations": listed(
            "hsdsOrganizations", "organizations", "HsdsOrganization", paging,
            "The organisations that run at least one published resource, by name."),
        f"{HSDS}/organizations/{{id}}": one("hsdsOrganization", "organization",
                                            "HsdsOrganization"),
        f"{HSDS}/taxonomies": listed(
            "hsdsTaxonomies", "taxonomies", "HsdsTaxonomy", paging,
            "The taxonomies of the terms (categories, audiences, languages, ...)."),
        f"{HSDS}/taxonomies/{{id}}": one("hsdsTaxonomy", "taxonomy", "HsdsTaxonomy"),
        f"{HSDS}/taxonomy_terms": listed(
            "hsdsTaxonomyTerms", "taxonomy terms", "HsdsTaxonomyTerm",
            [*paging, "hsds_taxonomy_id"], "The terms, of one taxonomy with `taxonomy_id`."),
        f"{HSDS}/taxonomy_terms/{{id}}": one("hsdsTaxonomyTerm", "taxonomy term",
                                             "HsdsTaxonomyTerm"),
    }


def build_document(taxonomy: Taxonomy, *, page_size: int, max_page_size: int) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``/api/v1``, ``/ogc`` and ``/hsds`` (absolute paths,
    server ``/``)."""
    resources_ok = _ok("A page of matching resources.", {
        GEOJSON: {"schema": _ref("schemas", "FeatureCollection")},
        JSON: {"schema": _ref("schemas", "ResourceItems")},
        "text/csv": {"schema": _ref("schemas", "ResourcesCsv")},
    }, last_modified=True, link=True)
    json_ok = {JSON: {"schema": {"type": "object"}}}
    lookup = "Lookups"
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "mapservice read API",
            "version": __version__,
            "description": (
                "Community resilience resources (support groups, youth centres, counselling, "
                "language cafés, ...) as GeoJSON, JSON or CSV under `/api/v1`, as OGC API "
                "– Features under `/ogc` and as Open Referral HSDS 3.0 under `/hsds`. "
                "Every filter is validated: a malformed or unknown "
                "parameter is a 400 `application/problem+json` naming it, never silently "
                "ignored. Reads are public, cacheable for 60 s (`ETag`/`Last-Modified`, 304), "
                "compressed (br, gzip) and open to other origins (CORS). A deployment may "
                "limit the requests of one client address (`MAPSERVICE_RATE_LIMIT`, off by "
                "default): beyond it every operation answers 429 `application/problem+json` "
                "with `Retry-After` (readable from other origins)."),
            "license": {"name": "AGPL-3.0-or-later",
                        "url": "https://www.gnu.org/licenses/agpl-3.0.html"},
        },
        "servers": [{"url": "/", "description": "This server (the paths are absolute)."}],
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": {
            f"{API}/resources": {"get": _operation(
                "searchResources", "Resources", "Search resources",
                "The one search of the service (the map, the list and the exports use it). "
                "Filters combine with AND; the values of one filter with OR. Paging: `limit` "
                "and `offset`, or follow the `next` link (also sent as a `Link` header).",
                list(RESOURCE_QUERY), resources_ok)},
            f"{API}/clusters": {"get": _operation(
                "clusterResources", "Resources", "Matches counted per grid cell",
                "Every match of the filters (those of `/api/v1/resources`) in `bbox`, counted "
                "per cell of a grid: one Point per cell that holds any, at the mean of its "
                "places' public points (a confidential place at its approximate one), with "
                "`count`. What the map shows when its area holds more places than one page "
                "of `/api/v1/resources` may carry. `near`, `radius`, `sort`, `limit` and "
                "`offset` are refused: the answer counts every match.",
                list(CLUSTER_QUERY),
                _ok("The cells.", {GEOJSON: {"schema": _ref("schemas", "Clusters")}},
                    last_modified=True))},
            f"{API}/resources/{{id}}": {"get": _operation(
                "getResource", "Resources", "One resource",
                "A published resource as a GeoJSON Feature.", ["id", "feature_f"],
                _ok("The resource.", {GEOJSON: {"schema": _ref("schemas", "Feature")}},
                    last_modified=True),
                not_found="NotFound")},
            f"{API}/sources": {"get": _operation(
                "listSources", "Resources", "Sources and their licences",
                "The sources of the published resources, with licence and attribution.", [],
                _ok("The sources.", {JSON: {"schema": _ref("schemas", "Sources")}}))},
            f"{API}/categories": {"get": _operation(
                "listCategories", lookup, "Categories and the rest of the taxonomy",
                "The taxonomy: categories (with their resilience domains), domains, "
                "audiences and languages, with labels in one UI language (`lang`, else "
                "`Accept-Language`).", ["lang"],
                _ok("The taxonomy.", {JSON: {"schema": _ref("schemas", "Taxonomy")}},
                    language=True))},
            f"{API}/districts": {"get": _operation(
                "listDistricts", lookup, "Districts",
                "The Bezirke, each with its Stadtteile (`type`, official `id`, `name`, centre "
                "`lat`/`lon` and `bbox`): the names `district` accepts.", [],
                _ok("The districts: `{\"districts\": [Bezirk with \"stadtteile\": "
                    "[Stadtteil, ...]], ...]}`.",
                    {JSON: {"schema": _ref("schemas", "Districts")}}))},
            f"{API}/geocode": {"get": _operation(
                "geocode", lookup, "Find a place",
                "A postcode, Stadtteil or Bezirk to coordinates, from the offline gazetteer "
                "(no request leaves the server). Each result says what it is in `type` "
                "(`postcode`, `stadtteil`, `bezirk` or `address`). Street addresses are not "
                "resolved by default: only a postcode in them is. The operator may switch on "
                "an online geocoder (Nominatim; off by default): then a `q` the gazetteer does "
                "not find is sent, as typed, to the configured server, and its matches within "
                "the service region come back as `address` results with the server's licence "
                "note in `attribution`. No match is an empty list.", ["geocode_q"],
                _ok("Matching places, best first.",
                    {JSON: {"schema": _ref("schemas", "GeocodeResults")}}),
                unavailable="GeocoderUnavailable", too_many="TooManyGeocoderRequests")},
            **_ogc_paths(),
            **_hsds_paths(),
            f"{API}/openapi.json": {"get": _operation(
                "openapi", "This document", "This document",
                "The OpenAPI 3.0 document of `/api/v1`, `/ogc` and `/hsds` (the `service-desc` "
                "of the OGC landing page).", [], _ok("The document.", json_ok))},
            f"{API}/docs": {"get": _operation(
                "docs", "This document", "API reference page", "This document as an HTML page.",
                [], _ok("The page.", {"text/html": {"schema": {"type": "string"}}}))},
        },
        "components": {
            "parameters": _parameters(taxonomy, page_size, max_page_size),
            "schemas": _schemas(taxonomy),
            "responses": _responses(),
            "headers": _headers(),
        },
    }


def document() -> dict[str, Any]:
    """The document for the current app (its taxonomy and page sizes)."""
    return build_document(current_app.extensions["mapservice"]["taxonomy"],
                          page_size=current_app.config["PAGE_SIZE"],
                          max_page_size=current_app.config["MAX_PAGE_SIZE"])


# ---- the reference page --------------------------------------------------------------------
_CODE_SPAN = re.compile(r"`([^`]+)`")


def _prose(text: str) -> Markup:
    """Escaped text with the document's `code` spans as <code>."""
    return Markup(_CODE_SPAN.sub(r"<code>\1</code>", str(escape(text))))


def _example(value: Any) -> str | None:
    if value is None:
        return None
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _resolve(doc: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        _, _, kind, name = node["$ref"].split("/")
        node = doc["components"][kind][name]
    return dict(node)


def _describe_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Type, allowed values and bounds of a parameter schema, for people."""
    if "anyOf" in schema:
        kinds = [s.get("format") or s.get("type") for s in schema["anyOf"]]
        return {"type": " or ".join(kinds), "allowed": [], "bounds": ""}
    if schema.get("type") == "array":
        inner = _describe_schema(schema["items"])
        return {**inner, "type": f"list of {inner['type']}"}
    bounds = []
    if "minimum" in schema:
        bounds.append(("> " if schema.get("exclusiveMinimum") else "≥ ")
                      + f"{schema['minimum']:g}")
    if "maximum" in schema:
        bounds.append(f"≤ {schema['maximum']:g}")
    if "default" in schema:
        bounds.append(f"default {schema['default']}")
    return {"type": schema.get("format") or schema.get("type", ""),
            "allowed": list(schema.get("enum", [])), "bounds": ", ".join(bounds)}


def reference(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The operations of ``doc`` with resolved parameters and responses, for the page."""
    out = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            params = []
            for ref in op.get("parameters", []):
                param = _resolve(doc, ref)
                params.append({"name": param["name"], "in": param["in"],
                               "required": param.get("required", False),
                               "description": _prose(param.get("description", "")),
                               "example": _example(param.get("example")),
                               **_describe_schema(param["schema"])})
            responses = []
            for status, ref in op["responses"].items():
                resp = _resolve(doc, ref)
                responses.append({"status": status, "description": _prose(resp["description"]),
                                  "types": list(resp.get("content", {}))})
            out.append({"method": method.upper(), "path": path, "id": op["operationId"],
                        "tag": op["tags"][0],
                        "summary": op["summary"], "description": _prose(op["description"]),
                        "parameters": params, "responses": responses})
    return out


def sections(doc: Mapping[str, Any], operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operations grouped by their tag, in the order of the document's tags (every
    operation has one; tests/test_openapi.py checks that)."""
    return [{"name": tag["name"], "description": _prose(tag.get("description", "")),
             "id": "tag-" + re.sub(r"\W+", "-", tag["name"].lower()).strip("-"),
             "operations": [op for op in operations if op["tag"] == tag["name"]]}
            for tag in doc.get("tags", [])]


@bp.get("/openapi.json")
def openapi_json() -> Response:
    _only()
    return json_response(document())


@bp.get("/docs")
def docs() -> str:
    _only()
    doc = document()
    operations = reference(doc)
    # The paths are absolute; behind a prefix (SCRIPT_NAME) the page shows them under it.
    return render_template("api_docs.html", doc=doc, operations=operations,
                           sections=sections(doc, operations),
                           intro=_prose(doc["info"]["description"]),
                           prefix=request.script_root, server=request.url_root)
