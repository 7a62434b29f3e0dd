"""``/api/v1``: the read API. Thin: parse a SearchQuery, call the store, render."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request, url_for

from ..errors import InvalidParameter, NotFound
from ..geojson import feature, feature_collection, properties, to_csv
from ..http import json_response
from ..search import parse_search

bp = Blueprint("api", __name__, url_prefix="/api/v1")

FORMATS = {"geojson": "application/geo+json", "json": "application/json", "csv": "text/csv"}


def _ctx() -> dict:
    return current_app.extensions["mapservice"]


def _format() -> str:
    f = request.args.get("f")
    if f is not None:
        if f not in FORMATS:
            raise InvalidParameter("f", f"unknown format {f!r}; allowed: {', '.join(FORMATS)}")
        return f
    best = request.accept_mimetypes.best_match(
        ["application/geo+json", "application/json", "text/csv"], default="application/geo+json")
    return {v: k for k, v in FORMATS.items()}[best]


@bp.get("/resources")
def resources() -> Response:
    fmt = _format()
    query = parse_search(request.args, taxonomy=_ctx()["taxonomy"],
                         default_limit=current_app.config["PAGE_SIZE"],
                         max_limit=current_app.config["MAX_PAGE_SIZE"], extra=("f",))
    result = _ctx()["store"].search(query)
    links = [{"rel": "self", "href": request.url, "type": FORMATS[fmt]}]
    if result.next_offset is not None:
        args = request.args.to_dict(flat=False)
        args["offset"] = [str(result.next_offset)]
        links.append({"rel": "next", "type": FORMATS[fmt],
                      "href": url_for("api.resources", _external=True, **args)})
    if fmt == "csv":
        response = Response(to_csv(result.hits), mimetype="text/csv")
        response.headers["Content-Disposition"] = 'attachment; filename="resources.csv"'
    elif fmt == "json":
        response = json_response({"items": [properties(h) | {"lat": h.lat, "lon": h.lon}
                                            for h in result.hits],
                                  "numberReturned": len(result.hits), "links": links})
    else:
        response = json_response(feature_collection(result.hits,
                                                    numberReturned=len(result.hits),
                                                    links=links),
                                 mimetype=FORMATS["geojson"])
    if result.next_offset is not None:
        response.headers["Link"] = f'<{links[-1]["href"]}>; rel="next"'
    return response


@bp.get("/resources/<uid>")
def resource(uid: str) -> Response:
    hit = _ctx()["store"].get(uid)
    if hit is None:
        raise NotFound(f"no published resource with id {uid!r}")
    return json_response(feature(hit), mimetype=FORMATS["geojson"])


@bp.get("/sources")
def sources() -> Response:
    """Licences and attributions of the sources whose resources are shown."""
    return json_response({"sources": _ctx()["store"].sources_in_use()})
