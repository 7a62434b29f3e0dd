"""HTTP plumbing shared by every blueprint: the one error handler, problem+json, security
headers."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import orjson
from flask import Flask, Response, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from .errors import MapserviceError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_API_PREFIXES = ("/api/", "/ogc/", "/hsds/")


def json_response(data: object, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                    mimetype=mimetype)


def problem_response(problem: dict) -> Response:
    return json_response(problem, status=problem["status"], mimetype=PROBLEM_JSON)


def _wants_problem() -> bool:
    return request.path.startswith(_API_PREFIXES)


def tile_origin(tile_url: str) -> str:
    """The origin of the tile server, for the Content-Security-Policy (``{s}`` -> ``*``)."""
    parts = urlsplit(tile_url.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


def init_app(app: Flask) -> None:
    @app.errorhandler(MapserviceError)
    def _mapservice_error(exc: MapserviceError):
        if _wants_problem():
            return problem_response(exc.problem())
        return render_template("error.html", status=exc.status, detail=exc.detail), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if _wants_problem():
            return problem_response({"type": "about:blank", "title": exc.name,
                                     "status": exc.code, "detail": exc.description})
        return render_template("error.html", status=exc.code, detail=exc.description), exc.code

    @app.errorhandler(OperationalError)
    def _database_error(exc: OperationalError):
        timeout = "interrupted" in str(exc.orig) or "statement timeout" in str(exc.orig)
        log.warning("database error on %s: %s", request.path, exc.orig)
        detail = ("The query took too long and was stopped; narrow it down (smaller area, "
                  "fewer results)." if timeout else "The database is not available right now.")
        problem = {"type": "about:blank", "title": "Service unavailable", "status": 503,
                   "detail": detail}
        if _wants_problem():
            return problem_response(problem)
        return render_template("error.html", status=503, detail=detail), 503

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # pragma: no cover - the last line of defence
        log.exception("unhandled error on %s", request.path)
        problem = {"type": "about:blank", "title": "Internal error", "status": 500,
                   "detail": "An unexpected error occurred; it has been logged."}
        if _wants_problem():
            return problem_response(problem)
        return render_template("error.html", status=500, detail=problem["detail"]), 500

    tiles = tile_origin(app.config["TILE_URL"])
    csp = ("default-src 'self'; "
           # folium writes the map set-up as inline scripts
           "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
           f"img-src 'self' data: {tiles}; connect-src 'self'; font-src 'self'; "
           "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", csp)
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response
