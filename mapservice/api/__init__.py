"""``/api/v1``: the read API. Thin: parse a SearchQuery, call the store, render."""
from __future__ import annotations

import math

from flask import Blueprint, Response, current_app, g, request

from .. import geocode
from ..ratelimit import admit_online_lookup
from ..errors import InvalidParameter, NotFound
from ..geojson import feature_bytes, feature_collection, properties, to_csv
from ..http import json_response, request_url, use_last_modified
from ..i18n import preferred_language
from ..search import integer, parse_search, parse_text
from ..settings import region_bbox

bp = Blueprint("api", __name__, url_prefix="/api/v1")

FORMATS = {"geojson": "application/geo+json", "json": "application/json", "csv": "text/csv"}
_BY_MIMETYPE = {mimetype: name for name, mimetype in FORMATS.items()}


def _ctx() -> dict:
    return current_app.extensions["mapservice"]


def _single(name: str) -> str | None:
    """The value of parameter ``name``; given twice it is ambiguous: 400."""
    values = request.args.getlist(name)
    if len(values) > 1:
        raise InvalidParameter(name, "given more than once")
    return values[0] if values else None


def _format() -> str:
    """``f`` if given, else the best of ``Accept`` (then the response varies with it)."""
    f = _single("f")
    if f is not None:
        if f not in FORMATS:
            raise InvalidParameter("f", f"unknown format {f!r}; allowed: {', '.join(FORMATS)}")
        return f
    g.negotiated = True
    accept = request.environ.get("HTTP_ACCEPT", "*/*").strip()
    if accept in ("", "*/*"):  # most clients: no need to parse it
        return "geojson"
    best = request.accept_mimetypes.best_match(list(FORMATS.values()),
                                               default=FORMATS["geojson"])
    return _BY_MIMETYPE[best]


@bp.get("/resources")
def resources() -> Response:
    fmt = _format()
    query = parse_search(request.args, taxonomy=_ctx()["taxonomy"],
                         default_limit=current_app.config["PAGE_SIZE"],
                         max_limit=current_app.config["MAX_PAGE_SIZE"], extra=("f",))
    result = _ctx()["store"].search(query)
    use_last_modified(result.last_modified)
    links = [{"rel": "self", "href": request_url(), "type": FORMATS[fmt]}]
    if result.next_offset is not None:
        query = [(k, v) for k, v in request.args.items(multi=True) if k != "offset"]
        links.append({"rel": "next", "type": FORMATS[fmt],
                      "href": request_url([*query, ("offset", str(result.next_offset))])})
    if fmt == "csv":
        response = Response(to_csv(result.hits), mimetype="text/csv")
        response.headers["Content-Disposition"] = 'attachment; filename="resources.csv"'
    elif fmt == "json":
        response = json_response({"items": [properties(h) | {"lat": h.lat, "lon": h.lon}
                                            for h in result.hits],
                                  "numberReturned": len(result.hits), "links": links})
    else:
        response = Response(feature_collection(result.hits, numberReturned=len(result.hits),
                                               links=links), mimetype=FORMATS["geojson"])
    if result.next_offset is not None:
        response.headers["Link"] = f'<{links[-1]["href"]}>; rel="next"'
    if g.get("negotiated"):  # a shared cache must not hand CSV to a GeoJSON client
        response.vary.add("Accept")
    return response


#: /resources' parameters that order or page a list: a grid of counts has neither.
_LIST_ONLY = ("near", "radius", "sort", "limit", "offset")
#: Cells along the box's width (and at most MAX_ROWS rows): at most MAX_GRID x MAX_ROWS cells.
DEFAULT_GRID, MAX_GRID, MAX_ROWS = 16, 64, 128


@bp.get("/clusters")
def clusters() -> Response:
    """Every match of the filters in ``bbox``, counted per cell of a grid (``grid`` cells
    along the box's width, square on a Web Mercator map in the service region): what the map
    shows when its area holds more places than one answer of /resources may carry."""
    for name in _LIST_ONLY:
        if name in request.args:
            raise InvalidParameter(name, "not a parameter of /clusters, which counts every "
                                         "match in bbox")
    raw = _single("grid")
    grid = DEFAULT_GRID if raw is None else integer(raw)
    if grid is None or not 1 <= grid <= MAX_GRID:
        raise InvalidParameter("grid", f"must be a whole number from 1 to {MAX_GRID}")
    query = parse_search(request.args, taxonomy=_ctx()["taxonomy"], extra=("grid",))
    if query.bbox is None:
        raise InvalidParameter("bbox", "required: minlon,minlat,maxlon,maxlat")
    minlon, minlat, maxlon, maxlat = query.bbox
    # Cells that stay put while the map pans at one zoom: their width follows the box's width
    # alone (a map's pixels at one zoom), their height that width times the cosine of the
    # service region's middle latitude (square there on a Web Mercator map), not of the
    # box's (which moved every row boundary when the map panned up or down).
    region = region_bbox(current_app.config)
    k = max(math.cos(math.radians((region[1] + region[3]) / 2)), 0.01)
    cx = max(maxlon - minlon, 1e-6) / grid
    rows = (maxlat - minlat) / (cx * k)
    if rows > MAX_ROWS:  # a box far taller than wide: coarser cells, at most MAX_ROWS rows
        cx *= rows / MAX_ROWS
    cells, newest = _ctx()["store"].clusters(query, (cx, cx * k))
    use_last_modified(newest)
    return json_response({
        "type": "FeatureCollection",
        "features": [{"type": "Feature",
                      "geometry": {"type": "Point",
                                   "coordinates": [round(lon, 6), round(lat, 6)]},
                      "properties": {"count": n}} for lon, lat, n in cells],
        "numberMatched": sum(n for *_, n in cells), "numberReturned": len(cells),
    }, mimetype=FORMATS["geojson"])


@bp.get("/resources/<uid>")
def resource(uid: str) -> Response:
    _only("f")  # GeoJSON only (f=geojson, as the OGC item takes it)
    f = _single("f")
    if f is not None and f != "geojson":
        raise InvalidParameter("f", f"unknown format {f!r}; one resource is given as geojson")
    hit = _ctx()["store"].get(uid)
    if hit is None:
        raise NotFound(f"no published resource with id {uid!r}")
    return Response(feature_bytes(hit), mimetype=FORMATS["geojson"])


@bp.get("/sources")
def sources() -> Response:
    """Licences and attributions of the sources whose resources are shown."""
    _only()
    return json_response({"sources": _ctx()["store"].sources_in_use()})


def _only(*allowed: str) -> None:
    for name in request.args:
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise InvalidParameter(name, f"unknown parameter; known: {known}")


def _label_language() -> str:
    """``lang`` if given (it must be a UI language), else the best of Accept-Language, else the
    default. No cookie: the answer depends only on the URL and Accept-Language."""
    offered = _ctx()["taxonomy"].ui_languages
    lang = _single("lang")
    if lang is not None:
        if lang not in offered:
            raise InvalidParameter("lang", f"unknown language {lang!r}; allowed: "
                                           + ", ".join(offered))
        return lang
    return preferred_language(offered)


@bp.get("/categories")
def categories() -> Response:
    """The taxonomy (categories, resilience domains, audiences, languages) with labels in one
    UI language."""
    _only("lang")
    taxonomy, lang = _ctx()["taxonomy"], _label_language()
    response = json_response({"lang": lang, **{kind: taxonomy.localized(kind, lang) for kind in
                                               ("categories", "domains", "audiences",
                                                "languages")}})
    response.headers["Content-Language"] = lang
    response.vary.add("Accept-Language")
    return response


@bp.get("/districts")
def districts() -> Response:
    """The Bezirke with their Stadtteile (centroids and bounding boxes): the names
    ``district`` accepts."""
    _only()
    return json_response({"districts": geocode.default().bezirke()})


@bp.get("/geocode")
def geocode_place() -> Response:
    """A postcode, Stadtteil or Bezirk -> coordinates, from the offline gazetteer; a query it
    does not find goes to the online geocoder when the settings switch one on (a failure
    there is a 503 naming the cause, a busy one 503 and a client beyond its
    ``GEOCODER_RATE_LIMIT`` 429, both with ``Retry-After``)."""
    _only("q")
    text = parse_text(_single("q"))
    if text is None:
        raise InvalidParameter("q", "is missing or empty: give a postcode, Stadtteil or Bezirk")
    return json_response({"query": text, "results": geocode.find_place(
        text, current_app.config, before_online=admit_online_lookup)})


# The OpenAPI document (/openapi.json) and its reference page (/docs) register on ``bp``.
from . import openapi  # noqa: E402,F401
