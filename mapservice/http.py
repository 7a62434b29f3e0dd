"""HTTP plumbing shared by every blueprint: the one error handler, problem+json, security
headers, conditional requests (ETag, Last-Modified, 304), caching headers, compression (brotli,
gzip) and CORS for the read API.

Nothing here is cached in process memory: validators are computed per response (a hash of the
body, one indexed ``max(updated_at)``), so every worker answers the same way.
"""
from __future__ import annotations

import datetime as dt
import gc
import gzip
import logging
import re
from typing import Iterable
from urllib.parse import quote, unquote_to_bytes, urlencode, urlsplit

import brotli
import orjson
from flask import Flask, Response, current_app, g, has_request_context, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter import RateLimitExceeded
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import BadRequest, HTTPException

from .errors import InvalidParameter, MapserviceError, NotFound

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
# The public read API: conditional requests, public caching and CORS apply at and below these.
READ_ROOTS = ("/api/v1", "/ogc", "/hsds")
_API_ROOTS = ("/api", "/ogc", "/hsds")  # errors at and below these are problem+json
# Responses built from the resource table get Last-Modified = the newest resource.updated_at
# (of any status: archiving or unpublishing a resource changes what the public sees, too).
_RESOURCE_DATA_PREFIXES = ("/api/v1/resources", "/api/v1/clusters", "/ogc/collections/",
                           "/hsds/")
# Short: moderators change data, and a stale answer should not outlive a minute.
API_CACHE_CONTROL = "public, max-age=60"
COMPRESS_MIN_BYTES = 500
_COMPRESSIBLE = frozenset({
    "application/json", "application/geo+json", "application/problem+json",
    "application/schema+json", "application/vnd.oai.openapi+json", "application/javascript",
    "application/xml", "image/svg+xml", "text/csv", "text/css", "text/html", "text/javascript",
    "text/plain", "text/xml",
})
_GZIP_LEVEL = 6
_BROTLI_QUALITY = 5  # brotli's default (11) costs ~20x the CPU for a few per cent less
CORS_EXPOSE_HEADERS = "ETag, Link, Content-Disposition, Retry-After"
CORS_ALLOW_HEADERS = "Accept, Accept-Language, If-None-Match, If-Modified-Since"
_READ_METHODS = ("GET", "HEAD")
# The request headers that can make a response conditional (304, 412) or partial (206).
_CONDITIONAL_HEADERS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH",
                        "HTTP_IF_UNMODIFIED_SINCE", "HTTP_RANGE", "HTTP_IF_RANGE")
# The cyclic GC's first threshold in a process that serves the app (see _tune_gc).
GC_THRESHOLD0 = 50_000
_NUL = "\x00"


def json_response(data: object, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                    mimetype=mimetype)


def problem_response(problem: dict) -> Response:
    if has_request_context() and _under(request.path, ("/ogc",)) and "code" not in problem:
        # Under /ogc every error, also a 404 of an unknown path or a 405, carries the members
        # of OGC API's exception schema as well.
        problem = {**problem, "code": "".join(str(problem["title"]).title().split()),
                   "description": problem.get("detail", problem["title"])}
    return json_response(problem, status=problem["status"], mimetype=PROBLEM_JSON)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def is_read_api(path: str) -> bool:
    """``path`` is at or below the public read API (:data:`READ_ROOTS`)."""
    return _under(path, READ_ROOTS)


def _wants_problem() -> bool:
    return _under(request.path, _API_ROOTS)


# Characters left as they are in a path and a query (werkzeug's choice for Request.url, the WHATWG
# URL standard's path-segment and query sets, plus "%" for what is already escaped).
_PATH_SAFE = "!$&'()*+,/:;=@%"
_QUERY_SAFE = "!$&'()*+,/:;=?@%"
# A query string that quoting would leave as it is (the usual case: clients escape).
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,/:;=?@%]*")


def request_url(query: Iterable[tuple[str, str]] | None = None) -> str:
    """The URL of this request as a URI, for links in a response: with its query string as
    sent, or with the query ``query`` (name, value pairs, in order) instead.

    ``request.url`` and ``url_for(_external=True)`` give the same URL as an IRI, but build it
    through werkzeug's IRI conversion and URL map: ~0.15 ms of a 2 ms nearest-10 request for
    its self and next links."""
    base = (f"{request.scheme}://{request.host}"
            f"{quote(request.script_root + request.path, safe=_PATH_SAFE)}")
    if query is None:
        raw = request.environ.get("QUERY_STRING", "")
        if not _PLAIN_QUERY.fullmatch(raw):  # e.g. spaces or non-ASCII sent unescaped
            raw = quote(raw.encode("latin-1"), safe=_QUERY_SAFE)
        return f"{base}?{raw}" if raw else base
    encoded = urlencode(list(query))
    return f"{base}?{encoded}" if encoded else base


def tile_origin(tile_url: str) -> str:
    """The origin of the tile server, for the Content-Security-Policy (``{s}`` -> ``*``)."""
    parts = urlsplit(tile_url.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


# ---- conditional requests and caching ----------------------------------------------------
def resources_last_modified() -> dt.datetime | None:
    """The newest ``resource.updated_at`` (UTC); None when empty. A view that searched
    already has it (``SearchResult.last_modified``) and hands it on with
    :func:`use_last_modified`, saving a second checkout and query."""
    if "resources_newest" in g:
        return g.resources_newest
    return current_app.extensions["mapservice"]["store"].newest_change()


def use_last_modified(value: dt.datetime | None) -> None:
    """The newest change of the resources, as the view's own search read it."""
    g.resources_newest = value


def _is_anonymous(response: Response) -> bool:
    """Public caching only for answers that depend on no credentials or cookies."""
    vary = response.headers.get("Vary")
    return ("HTTP_AUTHORIZATION" not in request.environ and "Set-Cookie" not in response.headers
            and not (vary and "cookie" in {v.strip().lower() for v in vary.split(",")}))


def _set_last_modified(response: Response) -> None:
    try:
        newest = resources_last_modified()
    except SQLAlchemyError as exc:  # the body is fine; the validator is optional
        log.warning("no Last-Modified for %s: %s", request.path, exc)
        return
    if newest is None:
        return
    # HTTP dates have whole seconds: a change later in the same second would not move the
    # header, so a date that young is no validator (RFC 9110, 8.8.2.2); the ETag still is.
    if newest.replace(microsecond=0) >= dt.datetime.now(dt.timezone.utc).replace(microsecond=0):
        return
    response.last_modified = newest


def _conditional(response: Response) -> Response:
    """ETag (weak, a hash of the body), Last-Modified and Cache-Control on successful public
    reads, then 304 when the client's copy is current."""
    if response.status_code >= 400:
        response.headers["Cache-Control"] = "no-store"
        return response
    if (request.method not in _READ_METHODS or response.status_code != 200
            or not _under(request.path, READ_ROOTS) or response.is_streamed
            or response.direct_passthrough):
        return response
    if _is_anonymous(response):
        response.headers.setdefault("Cache-Control", API_CACHE_CONTROL)
    else:
        response.headers.setdefault("Cache-Control", "private, no-cache")
    if request.path.startswith(_RESOURCE_DATA_PREFIXES) and "Last-Modified" not in response.headers:
        _set_last_modified(response)
    response.add_etag(weak=True)
    if not any(name in request.environ for name in _CONDITIONAL_HEADERS):
        # Nothing to compare the validators with: make_conditional would only add a Date
        # header (the server writes one) and parse absent headers (~0.1 ms a request).
        return response
    environ = request.environ
    ignore = set()
    if environ.get("HTTP_IF_MATCH", "").strip() == "*":
        # RFC 9110 13.1.1: "*" holds for any current representation (werkzeug says 412)
        ignore.add("HTTP_IF_MATCH")
    since = request.if_modified_since
    if since is not None and since > dt.datetime.now(dt.timezone.utc):
        # RFC 9110 8.8.2.1: a date later than the server's time is invalid (werkzeug would
        # answer 304 to "Fri, 31 Dec 9999 ...")
        ignore.add("HTTP_IF_MODIFIED_SINCE")
    if ignore:
        environ = {k: v for k, v in environ.items() if k not in ignore}
    response = response.make_conditional(environ)
    if response.status_code == 412:
        # A failed precondition is an error: a problem without the page's body, not cached
        etag = response.headers.get("ETag")
        failed = problem_response({
            "type": "about:blank", "title": "Precondition Failed", "status": 412,
            "detail": ("If-Match: no entity tag matches strongly; this answer's ETag is weak "
                       f"({etag}): revalidate with If-None-Match" if "HTTP_IF_MATCH" in environ
                       else "If-Unmodified-Since: the answer changed after that date")})
        failed.headers["Cache-Control"] = "no-store"
        if etag:
            failed.headers["ETag"] = etag
        return failed
    return response


# ---- compression ---------------------------------------------------------------------------
def _compressible(response: Response) -> bool:
    mimetype = response.mimetype or ""
    return mimetype in _COMPRESSIBLE or mimetype.endswith(("+json", "+xml"))


def choose_encoding(accept_encoding: str | None) -> str | None:
    """``"br"``, ``"gzip"`` or None for an Accept-Encoding header, honouring q-values (br wins
    a tie: smaller at the same speed)."""
    from werkzeug.datastructures import Accept
    from werkzeug.http import parse_accept_header

    if not accept_encoding:
        return None
    accept = parse_accept_header(accept_encoding, Accept)
    best = max(("br", "gzip"), key=lambda coding: accept[coding])
    return best if accept[best] > 0 else None


def _compress(response: Response) -> Response:
    if not _compressible(response):
        return response
    response.vary.add("Accept-Encoding")
    if (response.status_code < 200 or response.status_code in (204, 206, 304)
            or "Content-Encoding" in response.headers):
        return response
    if response.direct_passthrough:  # a static file: read it (they are small) and compress
        response.direct_passthrough = False
    elif response.is_streamed:  # a generator: its size is unknown and it must stay streamed
        return response
    coding = choose_encoding(request.headers.get("Accept-Encoding"))
    if coding is None:
        return response
    data = response.get_data()
    if len(data) <= COMPRESS_MIN_BYTES:
        return response
    if coding == "br":
        body = brotli.compress(data, mode=brotli.MODE_TEXT, quality=_BROTLI_QUALITY)
    else:
        body = gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
    response.set_data(body)
    response.headers["Content-Encoding"] = coding
    # A strong ETag promises identical bytes; the compressed body is only equivalent.
    etag, weak = response.get_etag()
    if etag and not weak:
        response.set_etag(etag, weak=True)
    return response


# ---- CORS ----------------------------------------------------------------------------------
def _cors(response: Response) -> Response:
    """CORS for reading only: GET/HEAD under the read API, never HTML, never another method."""
    if not _under(request.path, READ_ROOTS):
        return response
    if request.method == "OPTIONS":
        wanted = request.headers.get("Access-Control-Request-Method", "").upper()
        if wanted in _READ_METHODS and "GET" in response.allow:
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = "86400"
        return response
    if request.method in _READ_METHODS and response.mimetype != "text/html":
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    return response


def _check_host() -> None:
    """werkzeug empties a ``Host`` header that is no host name (``evil.example"><svg>``):
    every link the answer holds would then read ``http:///…``. A 400 says what is wrong."""
    if not request.host:
        raise BadRequest("the Host header is not a valid host name")


def _check_query() -> None:
    """Under the API: a NUL in the path is a 404; parameters that cannot be read as text are
    a 400 (:func:`check_query_text`). (The map page checks its filters itself.)"""
    if not _under(request.path, _API_ROOTS):
        return
    if _NUL in request.path:
        raise NotFound("nothing here: the path contains a NUL character")
    check_query_text()


def check_query_text(names: tuple[str, ...] | None = None) -> None:
    """The request's parameters (or only ``names``) that the app cannot read as text are a
    400 naming the parameter: a NUL character (no valid value, and PostgreSQL refuses it) and
    percent-escapes that are not UTF-8 (``q=%DEmo``: werkzeug would hand on the text "%DEmo",
    and a search for it would answer as if nothing had been asked)."""
    query = request.environ.get("QUERY_STRING", "")
    if query.isascii() and "%" not in query:  # the usual case: nothing can be wrong
        return
    _check_query_text(query, names)


def _check_query_text(query: str, names: tuple[str, ...] | None) -> None:
    for part in query.split("&"):
        if not part:
            continue
        pieces = [unquote_to_bytes(piece.replace("+", " ").encode("latin-1"))
                  for piece in part.split("=", 1)]
        name = pieces[0].decode("utf-8", "replace").replace(_NUL, "")
        if names is not None and name not in names:
            continue
        for piece in pieces:
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidParameter(name, (
                    f"is not valid UTF-8 text (byte 0x{piece[exc.start]:02X} at position "
                    f"{exc.start + 1} after decoding the %-escapes)")) from None
            if _NUL in text:
                raise InvalidParameter(name, "contains a NUL character")


def _tune_gc() -> None:
    """Raise the cyclic garbage collector's first threshold from CPython's 700 to
    :data:`GC_THRESHOLD0` (never lower it).

    A bbox page of 1,000 features holds ~15,000 container objects (rows, hits, feature dicts,
    code lists) while it is built. At 700 the collector runs ~20 times during such a request,
    moves the page's live objects to the older generations, and so triggers a full collection
    (every object of the worker: 80-100 ms on the 2-core machine) every few requests; that
    was the p95 of bbox requests, 3x their median (docs/benchmarks.md, "Search"). The page's
    objects are freed by reference counting as soon as the response is built (only reference
    cycles need the collector, and serving a read makes few), so collecting less often costs
    little memory. Process-wide on purpose: each worker process builds its own app."""
    threshold0, *older = gc.get_threshold()
    if 0 < threshold0 < GC_THRESHOLD0:  # 0: the collector is disabled; leave it so
        gc.set_threshold(GC_THRESHOLD0, *older)


class StatelessReadAPI(SecureCookieSessionInterface):
    """Flask's cookie sessions, but none below :data:`READ_ROOTS`: the read API is anonymous
    and stateless, so it neither loads a session (a signing serializer per request) nor can
    it set a cookie that would make its answers private (the null session refuses writes)."""

    def open_session(self, app: Flask, request_: object):  # type: ignore[override]
        if _under(getattr(request_, "path", ""), READ_ROOTS):
            return self.make_null_session(app)
        return super().open_session(app, request_)  # type: ignore[arg-type]


def _warn_untrusted_proxy(app: Flask) -> None:
    """Once per process: a request came through a proxy (``X-Forwarded-Proto``) whose headers
    the settings do not trust, so the links the app writes name the proxy's view of nothing:
    ``http://`` and the internal host. (gunicorn, the earlier server, trusted that header from
    127.0.0.1 by itself; granian does not.)"""
    if app.config.get("PROXY_COUNT"):
        return
    warned: list[bool] = []

    def check() -> None:
        if not warned and "HTTP_X_FORWARDED_PROTO" in request.environ:
            warned.append(True)
            log.warning("requests come with X-Forwarded-Proto, but MAPSERVICE_PROXY_COUNT is 0: "
                        "the header is ignored and links are written as %s://%s/...; behind "
                        "one reverse proxy set MAPSERVICE_PROXY_COUNT=1", request.scheme,
                        request.host)
    app.before_request(check)


# What an HTML error page tells a visitor, in the page's language. The technical detail (the
# parameter and value a filter refused, a message a route wrote) is English and shown below it,
# marked as English; werkzeug's own English descriptions are replaced, not shown.
_PAGE_MESSAGES = {
    400: _l("The request could not be understood."),
    404: _l("There is no page at this address."),
    405: _l("This address does not accept this kind of request."),
    413: _l("The request is too large."),
    414: _l("The link is too long."),
    416: _l("The requested part of the file does not exist."),
    429: _l("Too many requests: please wait a moment and try again."),
    500: _l("An unexpected error occurred. It has been logged; please try again later."),
    503: _l("The service is not available right now. Please try again in a few minutes."),
}


def error_page(status: int, message: str | None = None, *, detail: str | None = None,
               headers: Iterable[tuple[str, str]] = ()) -> tuple[str, int, list]:
    """The HTML error page for ``status``: ``message`` (else the status's own) in the
    visitor's language, ``detail`` below it as technical English."""
    if message is None:
        message = _PAGE_MESSAGES.get(status, _l("The request could not be completed."))
    return (render_template("error.html", status=status, message=message, detail=detail),
            status, list(headers))


def init_app(app: Flask) -> None:
    _tune_gc()
    app.session_interface = StatelessReadAPI()
    _warn_untrusted_proxy(app)

    @app.errorhandler(MapserviceError)
    def _mapservice_error(exc: MapserviceError):
        headers = [("Retry-After", str(exc.retry_after))] if exc.retry_after else []
        if _wants_problem():
            response = problem_response(exc.problem())
            response.headers.extend(headers)
            return response
        message = None
        if isinstance(exc, InvalidParameter):
            message = _("The link contains a value that the map cannot use (in "
                        "“%(parameter)s”).", parameter=exc.parameter)
        return error_page(exc.status, message, detail=exc.detail, headers=headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # Allow (405), Content-Range (416), Retry-After, WWW-Authenticate: the status's own
        # headers, which RFC 9110 asks for; not werkzeug's Content-Type (the body is ours).
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        description = exc.description
        if isinstance(exc, RateLimitExceeded):  # RATE_LIMIT (ratelimit.py)
            wait = g.get("retry_after", 60)
            headers.append(("Retry-After", str(wait)))
            description = (f"too many requests from this address ({exc.limit.limit}); ask "
                           f"again in {wait} s")
        if _wants_problem():
            response = problem_response({"type": "about:blank", "title": exc.name,
                                         "status": exc.code, "detail": description})
            response.headers.extend(headers)
            return response
        own = description != type(exc).description  # a detail the raiser wrote
        return error_page(exc.code or 500, detail=description if own else None,
                          headers=headers)

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
        return error_page(503, _("The search took too long and was stopped. Please narrow it "
                                 "down.") if timeout else None)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # pragma: no cover - the last line of defence
        log.exception("unhandled error on %s", request.path)
        problem = {"type": "about:blank", "title": "Internal error", "status": 500,
                   "detail": "An unexpected error occurred; it has been logged."}
        if _wants_problem():
            return problem_response(problem)
        return error_page(500)

    app.before_request(_check_host)
    app.before_request(_check_query)

    tiles = tile_origin(app.config["TILE_URL"])
    # Scripts: files from this server, and inline only with the page's nonce (the map page
    # marks Folium's set-up scripts with it; web.index). Styles stay 'unsafe-inline': Folium
    # writes <style> blocks and Leaflet positions its panes with style attributes.
    csp = ("default-src 'self'; script-src 'self'{nonce}; style-src 'self' 'unsafe-inline'; "
           f"img-src 'self' data: {tiles}; connect-src 'self'; font-src 'self'; "
           "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'")

    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            nonce = g.get("csp_nonce")
            response.headers.setdefault("Content-Security-Policy", csp.format(
                nonce=f" 'nonce-{nonce}'" if nonce else ""))
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.after_request
    def _http(response: Response) -> Response:
        # Registered first, so it runs after every other after_request hook has had its say.
        # Order matters: validators are computed on the identity body, before compression.
        response = _conditional(response)
        response = _compress(response)
        response = _cors(response)
        return _security_headers(response)
