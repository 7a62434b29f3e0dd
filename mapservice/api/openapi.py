"""The OpenAPI 3.0 document of ``/api/v1``, written as data, and its HTML reference page.

The document is built by :func:`build_document` from the same values the code validates against
(taxonomy codes, cost and wheelchair values, sort orders, formats, page sizes), so an enum can
never drift from what the API accepts. ``tests/test_openapi.py`` checks that every parameter the
code accepts is documented and vice versa, and runs schemathesis against a live server.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from flask import Response, current_app, render_template, url_for
from markupsafe import Markup, escape

from .. import __version__
from ..geojson import CSV_FIELDS
from ..http import json_response
from ..models import COSTS, WHEELCHAIR
from ..search import MAX_RADIUS_M, MAX_TEXT_LENGTH, SORTS
from ..taxonomy import Taxonomy
from . import FORMATS, bp

OPENAPI_VERSION = "3.0.3"
MAX_OFFSET = 1_000_000  # parse_search's bound for ``offset``; tests/test_openapi.py checks it
PROBLEM_JSON = "application/problem+json"
_NUMBER = r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?"


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
    """Every query parameter of the API, by name (the components section)."""
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
            "description": "Full-text search in name, description and organisation: every "
                           "word must match the beginning of a word (case, accents and umlaut "
                           "spelling do not matter; no query syntax).",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH},
            "example": "Sprachcafé",
        },
        "category": _codes_param("category", list(taxonomy.categories),
                                 "Category codes (see `/categories`)"),
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
                           "`/districts`; case, accents and umlaut spelling do not matter). "
                           "Repeat the parameter or separate names by commas.",
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
        "lang": {
            "name": "lang", "in": "query", "required": False,
            "description": "Language of the labels (default: from `Accept-Language`).",
            "schema": {"type": "string", "enum": list(taxonomy.ui_languages)},
        },
        "geocode_q": {
            "name": "q", "in": "query", "required": True,
            "description": "A postcode, or a Stadtteil or Bezirk name (or its beginning).",
            "schema": {"type": "string", "minLength": 1},
            "example": "22765",
        },
        "id": {
            "name": "id", "in": "path", "required": True,
            "description": "The resource's stable public id (a UUID).",
            "schema": {"type": "string"},
            "example": "46e750e7-dc8a-4a37-92cc-d1d204b39e7d",
        },
    }


RESOURCE_QUERY = ("near", "radius", "bbox", "q", "category", "audience", "language", "cost",
                  "wheelchair", "open_now", "open_at", "district", "updated_since", "sort",
                  "limit", "offset", "f")


def _labelled(codes: list[str], **extra: Any) -> dict[str, Any]:
    """A list of ``{code, label}`` entries (plus ``extra`` properties)."""
    return {"type": "array", "items": {
        "type": "object", "required": ["code", "label"],
        "properties": {"code": {"type": "string", "enum": codes}, "label": {"type": "string"},
                       "description": _nullable({"type": "string"}), **extra}}}


def _schemas(taxonomy: Taxonomy) -> dict[str, Any]:
    string, nstring = {"type": "string"}, _nullable({"type": "string"})
    codes = {name: {"type": "array", "items": {"type": "string", "enum": values}}
             for name, values in (("categories", list(taxonomy.categories)),
                                  ("audiences", list(taxonomy.audiences)),
                                  ("languages", list(taxonomy.languages)))}
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
        "email": nstring, "website": nstring, "organization": nstring,
        "location_confidential": {"type": "boolean"},
        "location_precision": {"type": "string", "enum": ["approximate"], "description":
                               "Present for a confidential location: the point is only the "
                               "centre of its area (about 1 km), the address is withheld."},
        "last_verified": _nullable({"type": "string", "format": "date"}),
        "updated_at": {**string, "description": "When the listing last changed (ISO 8601, "
                       "UTC)."},
        "source": string,
        "distance_m": {"type": "number", "minimum": 0,
                       "description": "Metres from `near` (only when `near` is given)."},
    }
    required = ["id", "name", "categories", "audiences", "languages", "cost", "wheelchair",
                "location_confidential", "source"]
    link = {"type": "object", "required": ["rel", "href"],
            "properties": {"rel": string, "href": string, "type": string}}
    links = {"type": "array", "items": _ref("schemas", "Link")}
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
        "FeatureCollection": {
            "type": "object", "required": ["type", "features"],
            "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                           "features": {"type": "array", "items": _ref("schemas", "Feature")},
                           "numberReturned": {"type": "integer", "minimum": 0},
                           "links": links}},
        "ResourceItems": {
            "type": "object", "required": ["items"],
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
        "Problem": {
            "type": "object", "required": ["type", "title", "status"],
            "description": "RFC 9457 problem details.",
            "properties": {"type": string, "title": string,
                           "status": {"type": "integer", "minimum": 400, "maximum": 599},
                           "detail": string, "instance": string}},
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
            "properties": {
                "lang": {"type": "string", "enum": list(taxonomy.ui_languages)},
                "categories": {"type": "array", "items": {
                    "type": "object", "required": ["code", "label", "domains"],
                    "properties": {"code": {"type": "string", "enum": list(taxonomy.categories)},
                                   "label": string, "description": nstring,
                                   "domains": {"type": "array", "items": {
                                       "type": "string", "enum": list(taxonomy.domains)}},
                                   "icon": string, "color": string}}},
                "domains": _labelled(list(taxonomy.domains)),
                "audiences": _labelled(list(taxonomy.audiences)),
                "languages": _labelled(list(taxonomy.languages),
                                       native={**string, "description": "The endonym."})}},
        "Place": {
            "type": "object", "required": ["type", "name", "lat", "lon"],
            "description": "A Bezirk, Stadtteil or postcode of the gazetteer.",
            "properties": {"type": {"type": "string", "enum": ["bezirk", "stadtteil",
                                                               "postcode"]},
                           "id": string, "name": string, "bezirk": string,
                           "stadtteil": string, "postcode": string,
                           "lat": {"type": "number", "minimum": -90, "maximum": 90},
                           "lon": {"type": "number", "minimum": -180, "maximum": 180},
                           "bbox": {"type": "array", "minItems": 4, "maxItems": 4,
                                    "items": {"type": "number"},
                                    "description": "`[minlon, minlat, maxlon, maxlat]`"}}},
        "Districts": {
            "type": "object", "required": ["districts"],
            "properties": {"districts": {"type": "array", "items": {"allOf": [
                _ref("schemas", "Place"),
                {"type": "object", "required": ["stadtteile"],
                 "properties": {"stadtteile": {"type": "array",
                                               "items": _ref("schemas", "Place")}}}]}}}},
        "GeocodeResults": {
            "type": "object", "required": ["query", "results"],
            "properties": {"query": string,
                           "results": {"type": "array", "items": _ref("schemas", "Place")}}},
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
    }


def _ok(description: str, content: Mapping[str, Any], *, last_modified: bool = False,
        link: bool = False) -> dict[str, Any]:
    headers = {name: _ref("headers", name) for name in ("ETag", "Cache-Control")}
    if last_modified:
        headers["Last-Modified"] = _ref("headers", "Last-Modified")
    if link:
        headers["Link"] = _ref("headers", "Link")
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
    }


def _operation(operation_id: str, summary: str, description: str, parameters: list[str],
               ok: dict[str, Any], *, not_found: bool = False,
               param_refs: Mapping[str, str] | None = None) -> dict[str, Any]:
    refs = dict(param_refs or {})
    responses: dict[str, Any] = {"200": ok, "304": _ref("responses", "NotModified"),
                                 "400": _ref("responses", "InvalidParameter")}
    if not_found:
        responses["404"] = _ref("responses", "NotFound")
    responses["503"] = _ref("responses", "Unavailable")
    return {"operationId": operation_id, "summary": summary, "description": description,
            "parameters": [_ref("parameters", refs.get(name, name)) for name in parameters],
            "responses": responses}


def build_document(taxonomy: Taxonomy, *, page_size: int, max_page_size: int) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``/api/v1`` (paths relative to the server ``/api/v1``)."""
    geojson = "application/geo+json"
    resources_ok = _ok("A page of matching resources.", {
        geojson: {"schema": _ref("schemas", "FeatureCollection")},
        "application/json": {"schema": _ref("schemas", "ResourceItems")},
        "text/csv": {"schema": _ref("schemas", "ResourcesCsv")},
    }, last_modified=True, link=True)
    json_ok = {"application/json": {"schema": {"type": "object"}}}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "mapservice read API",
            "version": __version__,
            "description": (
                "Community resilience resources (support groups, youth centres, counselling, "
                "language cafés, ...) as GeoJSON, JSON or CSV. Every filter is validated: a "
                "malformed or unknown parameter is a 400 `application/problem+json` naming "
                "it, never silently ignored. Reads are public, cacheable for 60 s "
                "(`ETag`/`Last-Modified`, 304), compressed (br, gzip) and open to other "
                "origins (CORS)."),
            "license": {"name": "AGPL-3.0-or-later",
                        "url": "https://www.gnu.org/licenses/agpl-3.0.html"},
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/resources": {"get": _operation(
                "searchResources", "Search resources",
                "The one search of the service (the map, the list and the exports use it). "
                "Filters combine with AND; the values of one filter with OR. Paging: `limit` "
                "and `offset`, or follow the `next` link (also sent as a `Link` header).",
                list(RESOURCE_QUERY), resources_ok)},
            "/resources/{id}": {"get": _operation(
                "getResource", "One resource",
                "A published resource as a GeoJSON Feature.", ["id"],
                _ok("The resource.", {geojson: {"schema": _ref("schemas", "Feature")}},
                    last_modified=True),
                not_found=True)},
            "/sources": {"get": _operation(
                "listSources", "Sources and their licences",
                "The sources of the published resources, with licence and attribution.", [],
                _ok("The sources.", {"application/json": {"schema": _ref("schemas",
                                                                         "Sources")}}))},
            "/categories": {"get": _operation(
                "listCategories", "Categories and the rest of the taxonomy",
                "The taxonomy: categories (with their resilience domains), domains, "
                "audiences and languages, with labels in one UI language (`lang`, else "
                "`Accept-Language`).", ["lang"],
                _ok("The taxonomy.", {"application/json": {"schema": _ref("schemas",
                                                                          "Taxonomy")}}))},
            "/districts": {"get": _operation(
                "listDistricts", "Districts",
                "The Bezirke with their Stadtteile (centre and bounding box): the names "
                "`district` accepts.", [],
                _ok("The districts.", {"application/json": {"schema": _ref("schemas",
                                                                           "Districts")}}))},
            "/geocode": {"get": _operation(
                "geocode", "Find a place",
                "A postcode, Stadtteil or Bezirk to coordinates, from the offline "
                "gazetteer. No match is an empty list.", ["geocode_q"],
                _ok("Matching places, best first.", {"application/json": {
                    "schema": _ref("schemas", "GeocodeResults")}}))},
            "/openapi.json": {"get": _operation(
                "openapi", "This document", "The OpenAPI 3.0 document of this API.", [],
                _ok("The document.", json_ok))},
            "/docs": {"get": _operation(
                "docs", "API reference page", "This document as an HTML page.", [],
                _ok("The page.", {"text/html": {"schema": {"type": "string"}}}))},
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
                        "summary": op["summary"], "description": _prose(op["description"]),
                        "parameters": params, "responses": responses})
    return out


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return json_response(document())


@bp.get("/docs")
def docs() -> str:
    doc = document()
    return render_template("api_docs.html", doc=doc, operations=reference(doc),
                           intro=_prose(doc["info"]["description"]),
                           base=url_for("api.openapi_json").rsplit("/", 1)[0])
