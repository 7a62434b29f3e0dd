"""``/ogc``: OGC API – Features, Part 1 Core with GeoJSON. Thin: parse, call the store, render.

One collection, ``resources``: the published listings, exactly as the JSON API serves them
(confidential places only as their approximate point). The items query is mapped onto the one
:class:`~mapservice.search.SearchQuery` through :func:`~mapservice.search.parse_search`; this
module only translates OGC's rules (clamped ``limit``, ``bbox-crs``, unknown parameter -> 400).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any, Iterable

from flask import Blueprint, Response, current_app, request, url_for
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from ..errors import InvalidParameter, MapserviceError, NotFound
from ..geocode import default as default_gazetteer
from ..geojson import feature, feature_collection, timestamp
from ..http import json_response, problem_response, use_last_modified
from ..i18n import language_code
from ..search import SearchQuery, integer, parse_datetime, parse_numbers, parse_search

bp = Blueprint("ogc", __name__, url_prefix="/ogc")

JSON = "application/json"
GEOJSON = "application/geo+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
)
COLLECTION = "resources"
FILTERS = ("category", "audience", "language", "cost", "wheelchair", "q", "district",
           "updated_since")
# Accepted on every path: the output format and the UI language of titles and messages.
COMMON_PARAMS = ("f", "lang")
ITEMS_PARAMS = (*COMMON_PARAMS, "bbox", "bbox-crs", "datetime", "limit", "offset", *FILTERS)
_MANY_DIGITS = re.compile(r"[0-9]+")
_DATE_T = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]")
_HAS_TIME = re.compile(r"\d[Tt ]\d")
_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
WORLD = (-180.0, -90.0, 180.0, 90.0)


def _ctx() -> dict:
    return current_app.extensions["mapservice"]


@bp.errorhandler(MapserviceError)
def _error(exc: MapserviceError) -> Response:
    # One problem format for the whole app, plus the members of OGC's exception schema.
    code = "InvalidParameterValue" if isinstance(exc, InvalidParameter) else type(exc).__name__
    return problem_response({**exc.problem(), "code": code, "description": exc.detail})


@bp.after_request
def _vary(response: Response) -> Response:
    # Titles and messages follow ``lang``, else Accept-Language (never a cookie: i18n).
    response.vary.add("Accept-Language")
    return response


def _check_args(allowed: Iterable[str], formats: Iterable[str] = ("json",)) -> None:
    """Unknown parameters are a 400 (OGC /req/core/query-param-unknown); ``f`` is validated."""
    allowed = tuple(allowed)
    for name in request.args:
        if name not in allowed:
            raise InvalidParameter(name, _("unknown parameter; known: %(known)s",
                                           known=", ".join(sorted(allowed))))
    formats = tuple(formats)
    values = request.args.getlist("f")
    if len(values) > 1:
        raise InvalidParameter("f", _("given more than once"))
    for value in values:
        if value in formats:
            continue
        raise InvalidParameter("f", _("unknown format %(value)r; allowed: %(allowed)s",
                                      value=value, allowed=", ".join(formats)))
    # Titles and messages follow it (i18n.select_locale): an unknown one is not ignored.
    offered = _ctx()["taxonomy"].ui_languages
    lang = _single("lang")
    if lang is not None and language_code(lang) not in offered:
        raise InvalidParameter("lang", _("unknown language %(value)r; allowed: %(allowed)s",
                                         value=lang, allowed=", ".join(offered)))


def _single(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise InvalidParameter(name, _("given more than once"))
    return values[0].strip() if values else None


def _url(endpoint: str, **values: Any) -> str:
    return url_for(endpoint, _external=True, **values)


def _link(rel: str, href: str, media_type: str, title: str | None = None) -> dict[str, str]:
    link = {"rel": rel, "type": media_type, "href": href}
    if title:
        link["title"] = title
    return link


def _region() -> tuple[float, float, float, float]:
    """The city the service covers: the union of the gazetteer's district boxes."""
    places = default_gazetteer().places
    if not places:
        return WORLD
    return (min(p.bbox[0] for p in places), min(p.bbox[1] for p in places),
            max(p.bbox[2] for p in places), max(p.bbox[3] for p in places))


def _temporal_extent() -> dict[str, Any]:
    """The span of the features' one temporal property, ``updated_at`` (what ``datetime``
    filters on), from the oldest to the newest change of a published resource; both ends
    open (null) while none is published."""
    oldest, newest = _ctx()["store"].published_change_range()
    # Whole seconds, as the items show updated_at; a datetime end names its whole second, so
    # the interval as given here selects every feature.
    return {"interval": [[_instant(oldest), _instant(newest)]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}


def _instant(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _collection_doc() -> dict[str, Any]:
    items = _url("ogc.items", collection_id=COLLECTION)
    return {
        "id": COLLECTION,
        "title": _("Community resilience resources"),
        "description": _("Support groups, youth centres, counselling, language cafés, family "
                         "centres and other places that help. Places whose address is protected "
                         "are shown only as an approximate point."),
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {"spatial": {"bbox": [list(_region())], "crs": CRS84},
                   "temporal": _temporal_extent()},
        "links": [
            _link("self", _url("ogc.collection", collection_id=COLLECTION), JSON),
            _link("items", items, GEOJSON, _("The resources as GeoJSON")),
        ],
    }


def _collection_id(collection_id: str) -> None:
    if collection_id != COLLECTION:
        raise NotFound(_("no collection %(id)r; the only collection is %(only)r",
                         id=collection_id, only=COLLECTION))


# ---- routes -----------------------------------------------------------------------------------
@bp.get("/", strict_slashes=False)
def landing() -> Response:
    _check_args(COMMON_PARAMS)
    return json_response({
        "title": _("Community resilience resources: OGC API – Features"),
        "description": _("The published resources of this map as OGC API – Features "
                         "(GeoJSON), for QGIS, GDAL and other GIS clients."),
        "links": [
            _link("self", _url("ogc.landing"), JSON),
            _link("service-desc", request.url_root + "api/v1/openapi.json", OPENAPI_JSON,
                  _("The API definition")),
            _link("conformance", _url("ogc.conformance"), JSON, _("Conformance classes")),
            _link("http://www.opengis.net/def/rel/ogc/1.0/conformance", _url("ogc.conformance"),
                  JSON, _("Conformance classes")),
            _link("data", _url("ogc.collections"), JSON, _("Collections")),
            _link("http://www.opengis.net/def/rel/ogc/1.0/data", _url("ogc.collections"), JSON,
                  _("Collections")),
        ],
    })


@bp.get("/conformance")
def conformance() -> Response:
    _check_args(COMMON_PARAMS)
    return json_response({"conformsTo": list(CONFORMANCE)})


@bp.get("/collections")
def collections() -> Response:
    _check_args(COMMON_PARAMS)
    return json_response({"links": [_link("self", _url("ogc.collections"), JSON)],
                          "collections": [_collection_doc()]})


@bp.get("/collections/<collection_id>")
def collection(collection_id: str) -> Response:
    _collection_id(collection_id)
    _check_args(COMMON_PARAMS)
    return json_response(_collection_doc())


def items_query() -> SearchQuery:
    """The OGC items request as the one :class:`SearchQuery`.

    ``limit`` above the maximum is clamped (OGC), not refused; ``bbox-crs`` may only name
    CRS84; everything else is validated by :func:`parse_search` under the same names.
    """
    _check_args(ITEMS_PARAMS, formats=("json", "geojson"))
    crs = _single("bbox-crs")
    if crs is not None and crs != CRS84:
        raise InvalidParameter("bbox-crs", _("only %(crs)s is supported", crs=CRS84))
    page_size, max_size = current_app.config["PAGE_SIZE"], current_app.config["MAX_PAGE_SIZE"]
    limit = page_size
    raw = _single("limit")
    if raw is not None:
        limit = integer(raw)
        if limit is None and _MANY_DIGITS.fullmatch(raw.strip()):
            limit = max_size  # a number beyond any page: clamped too (OGC: not an error)
        if limit is None:
            raise InvalidParameter("limit", _("%(value)r is not an integer", value=raw))
        if limit < 1:
            raise InvalidParameter("limit", _("must be at least 1"))
    args = MultiDict([(name, value) for name in ("bbox", "offset", *FILTERS)
                      for value in request.args.getlist(name)])
    boxes = args.getlist("bbox")
    if len(boxes) == 1 and boxes[0].count(",") == 5:
        # six numbers: a box with heights (OGC requires them to be understood); the places
        # have no height, so the box's ground plan decides
        minlon, minlat, low, maxlon, maxlat, high = parse_numbers("bbox", boxes[0], 6)
        if low > high:
            raise InvalidParameter("bbox", f"the lower height {low:g} is above the upper "
                                           f"height {high:g}")
        args["bbox"] = ",".join(repr(v) for v in (minlon, minlat, maxlon, maxlat))
    args["limit"] = str(min(limit, max_size))
    query = parse_search(args, taxonomy=_ctx()["taxonomy"], default_limit=page_size,
                         max_limit=max_size, bbox_antimeridian=True)
    since, before = _datetime_filter()
    if since is not None and (query.updated_since is None or since > query.updated_since):
        query = dataclasses.replace(query, updated_since=since)
    if before is not None:
        query = dataclasses.replace(query, updated_before=before)
    return query


def _datetime_filter() -> tuple[dt.datetime | None, dt.datetime | None]:
    """OGC ``datetime`` (an instant, or an interval ``start/end`` with ``..`` or nothing for an
    open end) on the resources' one temporal property, ``updated_at`` (their last change):
    (since, before) in UTC, ``before`` exclusive. An instant or an end is the whole second it
    names (the items show whole seconds), a date without a time the whole day (Hamburg time);
    a time without an offset is Hamburg time."""
    raw = _single("datetime")
    if raw is None:
        return None, None

    def bound(text: str, end: bool) -> dt.datetime | None:
        if text in ("", ".."):
            return None
        if _DATE_T.fullmatch(text):  # "2026-01-01T": a date (as GDAL 3.6 sends one)
            text = text[:-1]
        value = parse_datetime(text, "datetime", date_only_ok=True)
        if end:
            value += dt.timedelta(seconds=1) if _HAS_TIME.search(text) else dt.timedelta(days=1)
        return value.astimezone(dt.timezone.utc)

    start_raw, slash, end_raw = raw.partition("/")
    if not slash:
        if raw in ("", ".."):
            raise InvalidParameter("datetime", _("an instant must be a date or a date-time"))
        return bound(raw, False), bound(raw, True)
    if "/" in end_raw:
        raise InvalidParameter("datetime", _("an interval has one '/' between start and end"))
    start, end = bound(start_raw, False), bound(end_raw, True)
    if start is not None and end is not None and end <= start:
        raise InvalidParameter("datetime", _("the interval ends before it starts"))
    return start, end


@bp.get("/collections/<collection_id>/items")
def items(collection_id: str) -> Response:
    _collection_id(collection_id)
    query = items_query()
    result = _ctx()["store"].search(query)
    use_last_modified(result.last_modified)

    def page(offset: int) -> str:
        args = request.args.to_dict(flat=False)
        args.update(limit=[str(query.limit)], offset=[str(offset)])
        return _url("ogc.items", collection_id=COLLECTION, **args)

    links = [_link("self", page(query.offset), GEOJSON),
             _link("collection", _url("ogc.collection", collection_id=COLLECTION), JSON)]
    if result.next_offset is not None:
        links.append(_link("next", page(result.next_offset), GEOJSON, _("Next page")))
    if query.offset > 0:
        links.append(_link("prev", page(max(query.offset - query.limit, 0)), GEOJSON,
                           _("Previous page")))
    members: dict[str, Any] = {
        "timeStamp": timestamp(dt.datetime.now(dt.timezone.utc)),
        "numberReturned": len(result.hits),
    }
    if result.next_offset is None and (result.hits or query.offset == 0):
        # The last page tells the total for free; no count query on other pages.
        members["numberMatched"] = query.offset + len(result.hits)
    members["links"] = links
    response = Response(feature_collection(result.hits, **members), mimetype=GEOJSON)
    # the same links as headers too (/rec/core/link-header), for clients that page by them
    response.headers["Link"] = ", ".join(f'<{link["href"]}>; rel="{link["rel"]}"; '
                                         f'type="{link["type"]}"' for link in links)
    return response


@bp.get("/collections/<collection_id>/items/<feature_id>")
def item(collection_id: str, feature_id: str) -> Response:
    _collection_id(collection_id)
    _check_args(COMMON_PARAMS, formats=("json", "geojson"))
    # Ids are UUIDs; anything else cannot exist and never reaches the database.
    hit = _ctx()["store"].get(feature_id) if _ID.fullmatch(feature_id) else None
    if hit is None:
        raise NotFound(_("no published resource with id %(id)r", id=feature_id))
    doc = feature(hit)
    doc["links"] = [
        _link("self", _url("ogc.item", collection_id=COLLECTION, feature_id=feature_id),
              GEOJSON),
        _link("collection", _url("ogc.collection", collection_id=COLLECTION), JSON),
    ]
    return json_response(doc, mimetype=GEOJSON)
