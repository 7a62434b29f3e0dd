"""HTTP done right, on both backends: ETag/Last-Modified/304, Cache-Control, brotli/gzip, CORS
for the read API only, and a statement timeout that becomes a 503 problem."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import time
import urllib.request

import brotli
import pytest
from flask import Flask
from sqlalchemy import func, select, text, update

from mapservice import create_app
from mapservice.demo import DEMO_FILE, load_demo
from mapservice.http import choose_encoding, resources_last_modified
from mapservice.models import Resource
from mapservice.store import make_store

from .conftest import _clean
from .live import serve

LONG_AGO = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)


def _app(engine, tmp_path, **config) -> Flask:
    return create_app({"DATABASE_URL": engine.url.render_as_string(hide_password=False),
                       "INSTANCE_DIR": str(tmp_path / "instance"), "TESTING": True,
                       "TILE_URL": "http://tiles.invalid/{z}/{x}/{y}.png", **config})


def _age_all(store, when: dt.datetime = LONG_AGO) -> None:
    """Pretend every listing last changed at ``when`` (whole seconds, in the past)."""
    with store.engine.begin() as conn:
        conn.execute(update(Resource).values(updated_at=when))


def ensure_demo(engine) -> None:
    """The demo listings, all last changed at LONG_AGO, in ``engine``'s database.

    Loading them takes seconds, so they are loaded only when the database does not hold
    exactly that state already (another test's ``engine`` fixture empties it). Tests that
    read use this; tests that write use the ``engine`` fixture and data of their own.
    """
    expected = len(json.loads(DEMO_FILE.read_text(encoding="utf-8"))["resources"])
    with engine.connect() as conn:
        count, newest = conn.execute(select(func.count(), func.max(Resource.updated_at))).one()
    if newest is not None and newest.tzinfo is None:
        newest = newest.replace(tzinfo=dt.timezone.utc)
    if count == expected and newest == LONG_AGO:
        return
    _clean(engine)
    store = make_store(engine)
    load_demo(store)
    _age_all(store)


@pytest.fixture
def demo_app(request, backend, tmp_path):
    engine = request.getfixturevalue(f"_{backend}_engine")
    ensure_demo(engine)
    app = _app(engine, tmp_path)
    yield app
    app.extensions["mapservice"]["engine"].dispose()


@pytest.fixture
def demo_client(demo_app):
    return demo_app.test_client()


# ---- conditional requests and caching ----------------------------------------------------
def test_etag_last_modified_and_304(demo_client):
    url = "/api/v1/resources?near=53.55,10&limit=5"
    first = demo_client.get(url)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    assert first.headers["Cache-Control"] == "public, max-age=60"
    assert first.headers["Last-Modified"] == "Mon, 06 May 2024 07:08:09 GMT"

    again = demo_client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "public, max-age=60"
    since = demo_client.get(url, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    older = demo_client.get(url, headers={"If-Modified-Since": "Mon, 06 May 2024 07:08:08 GMT"})
    assert older.status_code == 200
    # a different query is a different body
    other = demo_client.get(url.replace("limit=5", "limit=6"), headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag


@pytest.mark.parametrize("header", ["If-Match", "If-Unmodified-Since", "Range"])
def test_other_conditional_headers_are_honoured(demo_client, header):
    url = "/api/v1/resources?limit=3"
    first = demo_client.get(url)
    value = {"If-Match": 'W/"stale"', "If-Unmodified-Since": "Mon, 06 May 2024 07:08:08 GMT",
             "Range": "bytes=0-9"}[header]
    r = demo_client.get(url, headers={header: value})
    # weak validators and a dynamic body: no partial content and no false "not modified"
    assert r.status_code in (200, 412) and r.headers["ETag"] == first.headers["ETag"]
    if header == "If-Match":
        assert r.status_code == 412
    if r.status_code == 412:  # an error: a problem, not the page's body, and never cached
        assert r.mimetype == "application/problem+json" and r.get_json()["status"] == 412
        assert r.headers["Cache-Control"] == "no-store"


def test_if_modified_since_in_the_future_is_ignored(demo_client):
    url = "/api/v1/resources?limit=3"
    r = demo_client.get(url, headers={"If-Modified-Since": "Fri, 31 Dec 9999 23:59:59 GMT"})
    assert r.status_code == 200 and r.get_json()["features"]


def test_if_match_star_holds_and_a_weak_etag_never_matches_strongly(demo_client):
    url = "/api/v1/resources?limit=3"
    first = demo_client.get(url)
    assert demo_client.get(url, headers={"If-Match": "*"}).status_code == 200
    # RFC 9110: If-Match compares strongly, and these answers have weak ETags
    r = demo_client.get(url, headers={"If-Match": first.headers["ETag"]})
    assert r.status_code == 412 and "If-None-Match" in r.get_json()["detail"]
    assert demo_client.get(url, headers={"If-Match": "garbage"}).status_code == 412


def test_private_answers_are_not_publicly_cached(demo_client):
    r = demo_client.get("/api/v1/resources?limit=1", headers={"Authorization": "Bearer x"})
    assert r.headers["Cache-Control"] == "private, no-cache"


def test_if_none_match_wins_over_if_modified_since(demo_client):
    url = "/api/v1/resources?limit=3"
    first = demo_client.get(url)
    r = demo_client.get(url, headers={"If-None-Match": 'W/"stale"',
                                      "If-Modified-Since": first.headers["Last-Modified"]})
    assert r.status_code == 200


def test_single_resource_and_head_are_conditional(demo_client):
    fid = demo_client.get("/api/v1/resources?limit=1").get_json()["features"][0]["id"]
    r = demo_client.get(f"/api/v1/resources/{fid}")
    assert r.status_code == 200 and "Last-Modified" in r.headers
    head = demo_client.head(f"/api/v1/resources/{fid}")
    assert head.status_code == 200 and head.headers["ETag"] == r.headers["ETag"]
    assert demo_client.get(f"/api/v1/resources/{fid}",
                           headers={"If-None-Match": r.headers["ETag"]}).status_code == 304


def test_documents_without_resource_data_have_only_an_etag(demo_client):
    r = demo_client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.headers["ETag"] and "Last-Modified" not in r.headers
    assert demo_client.get("/api/v1/openapi.json", headers={
        "If-None-Match": r.headers["ETag"]}).status_code == 304


def test_errors_are_not_stored(demo_client):
    for url in ("/api/v1/resources?limit=0", "/api/v1/resources/nope", "/api/v1/nothing"):
        r = demo_client.get(url)
        assert r.status_code in (400, 404)
        assert r.headers["Cache-Control"] == "no-store"
        assert "ETag" not in r.headers
        assert r.mimetype == "application/problem+json"


def test_html_pages_are_not_publicly_cached(demo_client):
    r = demo_client.get("/")
    assert "public" not in r.headers.get("Cache-Control", "")


def test_nul_characters_are_client_errors(demo_client):
    r = demo_client.get("/api/v1/resources?q=a%00b")
    assert r.status_code == 400 and r.get_json()["parameter"] == "q"
    r = demo_client.get("/api/v1/resources/abc%00def")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"


@pytest.mark.parametrize("url, parameter", [
    ("/api/v1/resources?q=%DEmo", "q"), ("/api/v1/resources?f=json&q=%C3%28", "q"),
    ("/hsds/services?search=%DEmo", "search"), ("/ogc/collections/resources/items?q=%FF", "q"),
    ("/api/v1/geocode?q=%C1ltona", "q"), ("/api/v1/resources?category=%FF", "category"),
    ("/api/v1/resources?%FF=1", "\ufffd"), ("/api/v1/resources?q=a%00b", "q"),
])
def test_parameters_that_are_not_utf8_text_are_client_errors(demo_client, url, parameter):
    # werkzeug hands on "%DEmo" as text: a search for it answered with every place
    r = demo_client.get(url)
    assert r.status_code == 400 and r.mimetype == "application/problem+json", r.data
    assert r.get_json()["parameter"] == parameter
    assert "UTF-8" in r.get_json()["detail"] or "NUL" in r.get_json()["detail"]


def test_the_panels_where_field_centres_the_map_on_a_place(demo_client):
    # a postcode, a Stadtteil, a Bezirk: the map centred there, the other filters kept
    r = demo_client.get("/?lang=en&where=20095&category=library&lat=1&lon=2&z=3&q=")
    assert r.status_code == 303
    location = r.headers["Location"]
    assert location.startswith("/?lang=en&category=library&lat=53.5") and location.endswith(
        "&z=14"), location
    assert "lon=10.0" in location and "where" not in location and "q=" not in location
    altona = demo_client.get("/?where=%20Altona%20").headers["Location"]
    assert "lat=53.5" in altona and "z=1" in altona
    # an empty one is no place; an unknown one: the map page again (400), the form as it was,
    # the problem at the field in the page's language, the closest names as links that keep
    # the other filters
    assert demo_client.get("/?lang=en&where=").headers["Location"] == "/?lang=en"
    r = demo_client.get("/?lang=en&where=Altonna&category=counselling&cost=free")
    assert r.status_code == 400 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert 'id="ms-map' in page or "ms-map" in page
    assert "“Altonna” is not a postcode or district we know." in page
    assert 'value="Altonna" aria-invalid="true"' in page
    assert "Did you mean:" in page and \
        'href="/?lang=en&amp;category=counselling&amp;cost=free&amp;where=Altona"' in page
    assert '<option value="counselling" selected>' in page
    ar = demo_client.get("/?lang=ar&where=Altonna").get_data(as_text=True)
    assert "«Altonna» ليس رمزًا بريديًا أو حيًّا أو منطقة نعرفها." in ar and "هل تقصد:" in ar
    assert demo_client.get("/?where=a&where=b").status_code == 400
    assert demo_client.get("/?where=%FF").status_code == 400


def test_a_host_header_that_is_no_host_name_is_a_client_error(demo_client):
    # werkzeug empties it: the links of the answer read http:///api/v1/...
    r = demo_client.get("/api/v1/resources?limit=1", headers={"Host": 'evil.example"><svg>'})
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert "Host" in r.get_json()["detail"]
    assert demo_client.get("/", headers={"Host": "a b"}).status_code == 400
    ok = demo_client.get("/api/v1/resources?limit=1", headers={"Host": "karte.example:8080"})
    assert ok.status_code == 200 and "http://karte.example:8080/api/v1/" in ok.headers["Link"]


def test_the_demo_sources_line_speaks_the_pages_language(demo_client):
    arabic = demo_client.get("/?lang=ar").get_data(as_text=True)
    assert "بيانات تجريبية خيالية" in arabic and "Fictional demo listings" not in arabic
    assert "Fictional demo listings" in demo_client.get("/?lang=en").get_data(as_text=True)


def test_map_page_refuses_filters_the_api_would_refuse(demo_client):
    # map.js hands its filters to the API: the page says what is wrong instead of a map that
    # cannot load its places
    for url, parameter in (("/?q=a%00b", "q"), ("/?district=Altona%00", "district"),
                           ("/?q=%DEmo", "q")):
        r = demo_client.get(url)
        assert r.status_code == 400 and r.mimetype == "text/html", url
        assert parameter in r.get_data(as_text=True)
    # what a messenger appends to a shared link is not the page's business
    assert demo_client.get("/?utm_source=%FF&x=%00").status_code == 200
    assert demo_client.get("/?q=Caf%C3%A9").status_code == 200


# ---- compression ---------------------------------------------------------------------------
@pytest.mark.parametrize("header, expected", [
    ("br, gzip", "br"), ("gzip, deflate", "gzip"), ("gzip;q=1, br;q=0.5", "gzip"),
    ("br;q=0, gzip", "gzip"), ("*", "br"), ("identity", None), ("", None), (None, None),
    ("br;q=0, gzip;q=0", None), ("GZIP", "gzip"),
])
def test_choose_encoding(header, expected):
    assert choose_encoding(header) == expected


@pytest.mark.parametrize("coding, decompress", [("br", brotli.decompress),
                                                ("gzip", gzip.decompress)])
@pytest.mark.parametrize("query", ["limit=50", "limit=50&f=json", "limit=50&f=csv"])
def test_compression_is_transparent(demo_client, coding, decompress, query):
    url = f"/api/v1/resources?{query}"
    plain = demo_client.get(url, headers={"Accept-Encoding": "identity"})
    packed = demo_client.get(url, headers={"Accept-Encoding": coding})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == coding
    for r in (packed, plain):
        assert "Accept-Encoding" in r.headers["Vary"]
    assert decompress(packed.data) == plain.data
    assert len(packed.data) < len(plain.data) / 3
    assert int(packed.headers["Content-Length"]) == len(packed.data)
    # one representation, one (weak) validator: a gzip client may revalidate its copy
    assert packed.headers["ETag"] == plain.headers["ETag"]
    assert demo_client.get(url, headers={"Accept-Encoding": coding,
                                         "If-None-Match": packed.headers["ETag"]}
                           ).status_code == 304


def test_small_and_binary_responses_are_not_compressed(demo_client):
    small = demo_client.get("/api/v1/sources", headers={"Accept-Encoding": "br, gzip"})
    assert len(small.data) <= 500 and "Content-Encoding" not in small.headers
    font = demo_client.get("/static/vendor/fontawesome/webfonts/fa-solid-900.woff2",
                           headers={"Accept-Encoding": "br, gzip"})
    assert font.status_code == 200 and "Content-Encoding" not in font.headers


def test_problem_json_is_compressed_when_large(demo_client):
    name = "x" * 600
    r = demo_client.get(f"/api/v1/resources?{name}=1", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 400 and r.headers["Content-Encoding"] == "gzip"
    assert name.encode() in gzip.decompress(r.data)
    assert r.headers["Cache-Control"] == "no-store"


def test_static_files_are_compressed_and_still_conditional(demo_client):
    url = "/static/vendor/leaflet/leaflet.js"
    plain = demo_client.get(url)
    packed = demo_client.get(url, headers={"Accept-Encoding": "br"})
    assert packed.headers["Content-Encoding"] == "br"
    assert brotli.decompress(packed.data) == plain.data
    assert packed.headers["ETag"].startswith('W/"')  # no longer byte-identical
    again = demo_client.get(url, headers={"Accept-Encoding": "br",
                                          "If-None-Match": packed.headers["ETag"]})
    assert again.status_code == 304
    ranged = demo_client.get(url, headers={"Accept-Encoding": "br", "Range": "bytes=0-99"})
    assert ranged.status_code == 206 and "Content-Encoding" not in ranged.headers


def test_compression_over_real_http(demo_app):
    with serve(demo_app) as base:
        req = urllib.request.Request(f"{base}/api/v1/resources?limit=100&f=csv",
                                     headers={"Accept-Encoding": "br"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Content-Encoding"] == "br"
            body = brotli.decompress(resp.read()).decode()
    assert body.startswith("id,name,lat,lon") and body.count("\n") == 101


# ---- CORS ----------------------------------------------------------------------------------
def test_cors_on_reads(demo_client):
    r = demo_client.get("/api/v1/resources?limit=1", headers={"Origin": "https://example.org"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    exposed = {h.strip() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ETag", "Link"} <= exposed
    # a client error is readable too (the problem tells what to fix)
    bad = demo_client.get("/api/v1/resources?limit=0", headers={"Origin": "https://x.org"})
    assert bad.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_preflight_for_get_only(demo_client):
    ok = demo_client.options("/api/v1/resources", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "if-none-match"})
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in ok.headers["Access-Control-Allow-Methods"]
    assert "If-None-Match" in ok.headers["Access-Control-Allow-Headers"]
    for method in ("POST", "PUT", "DELETE"):
        r = demo_client.options("/api/v1/resources", headers={
            "Origin": "https://example.org", "Access-Control-Request-Method": method})
        assert "Access-Control-Allow-Origin" not in r.headers


def test_no_cors_on_pages_or_writes(demo_app):
    @demo_app.post("/api/v1/_write")
    def _write():  # stands in for a future write endpoint
        return {"ok": True}

    client = demo_app.test_client()
    for url in ("/", "/api/v1/docs"):
        r = client.get(url, headers={"Origin": "https://example.org"})
        assert r.status_code == 200 and r.mimetype == "text/html"
        assert "Access-Control-Allow-Origin" not in r.headers
    post = client.post("/api/v1/_write", headers={"Origin": "https://example.org"})
    assert post.status_code == 200 and "Access-Control-Allow-Origin" not in post.headers
    assert "public" not in post.headers.get("Cache-Control", "")
    pre = client.options("/api/v1/_write", headers={"Origin": "https://example.org",
                                                    "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in pre.headers
    page = client.options("/", headers={"Origin": "https://example.org",
                                        "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in page.headers


def test_read_api_roots_are_matched_exactly(demo_app):
    @demo_app.get("/hsds")
    def _hsds_root():  # stands in for a landing page at the root of a read API
        return {"hsds": True}

    client = demo_app.test_client()
    root = client.get("/hsds")
    assert root.headers["Cache-Control"] == "public, max-age=60"
    assert root.headers["Access-Control-Allow-Origin"] == "*" and root.headers["ETag"]
    assert client.get("/api").mimetype == "application/problem+json"
    lookalike = client.get("/hsdsx")  # not below /hsds: a page, not the API
    assert lookalike.status_code == 404 and lookalike.mimetype == "text/html"
    assert "Access-Control-Allow-Origin" not in lookalike.headers


def test_authorised_reads_are_not_publicly_cached(demo_client):
    r = demo_client.get("/api/v1/resources?limit=1", headers={"Authorization": "Bearer x"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "private, no-cache"


# ---- statement timeout -> 503 --------------------------------------------------------------
_SLOW = {
    # about 30 s of work each without a timeout (bounded, so a broken timeout fails, not hangs)
    "postgresql": "SELECT pg_sleep(30)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
              "WHERE x < 30000000) SELECT count(*) FROM c",
}


def test_statement_timeout_is_a_503_problem(request, backend, tmp_path):
    engine = request.getfixturevalue(f"_{backend}_engine")  # any data will do: not emptied
    app = _app(engine, tmp_path, STATEMENT_TIMEOUT_MS=200)
    slow = _SLOW[engine.dialect.name]

    @app.get("/api/v1/_slow")
    def _slow_query():  # a query that would run far past the timeout
        with app.extensions["mapservice"]["engine"].connect() as conn:
            conn.execute(text(slow)).all()
        return {"finished": True}

    started = time.monotonic()
    r = app.test_client().get("/api/v1/_slow")
    elapsed = time.monotonic() - started
    assert r.status_code == 503, r.data
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["status"] == 503 and "took too long" in body["detail"]
    assert r.headers["Cache-Control"] == "no-store"
    assert elapsed < 10, "the query was not interrupted"
    # the connection is usable again afterwards: the next request is served normally
    assert app.test_client().get("/api/v1/resources?limit=1").status_code == 200
    app.extensions["mapservice"]["engine"].dispose()


def test_statement_timeout_on_a_page_is_a_503_page(request, backend, tmp_path):
    engine = request.getfixturevalue(f"_{backend}_engine")  # any data will do: not emptied
    app = _app(engine, tmp_path, STATEMENT_TIMEOUT_MS=200)
    slow = _SLOW[engine.dialect.name]

    @app.get("/_slow")
    def _slow_page():
        with app.extensions["mapservice"]["engine"].connect() as conn:
            conn.execute(text(slow)).all()
        return "finished"

    r = app.test_client().get("/_slow")
    assert r.status_code == 503 and r.mimetype == "text/html"
    assert r.headers["Cache-Control"] == "no-store"
    app.extensions["mapservice"]["engine"].dispose()


# ---- tests that write (each starts from an empty database) ---------------------------------
def _listings(store, n: int, prefix: str = "Listing") -> None:
    store.upsert([{"source_id": f"{prefix}-{i}", "name": f"{prefix} {i}", "lat": 53.55 + i / 1000,
                   "lon": 10.0, "categories": ["library"]} for i in range(n)],
                 source="test", changed_by="test")


def test_a_change_invalidates_etag_and_last_modified(client, store):
    _listings(store, 5)
    _age_all(store)
    url = "/api/v1/resources?near=53.55,10&limit=10"
    first = client.get(url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    _listings(store, 1, prefix="New")  # a moderator publishes a listing
    _age_all(store, LONG_AGO + dt.timedelta(hours=1))
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.headers["Last-Modified"] == "Mon, 06 May 2024 08:08:09 GMT"
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 200


def test_fresh_change_gives_no_last_modified(client, store):
    # A date in the current second (or ahead of this worker's clock) is no validator: a later
    # change in the same second would not move it. The ETag still works.
    _listings(store, 2)
    _age_all(store, dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5))
    r = client.get("/api/v1/resources?limit=2")
    assert r.status_code == 200 and r.headers["ETag"] and "Last-Modified" not in r.headers


def test_last_modified_is_the_newest_change_of_any_status(app, store):
    _listings(store, 3)
    _age_all(store)
    newer = LONG_AGO + dt.timedelta(days=1)
    with store.engine.begin() as conn:  # a listing was archived: the public view changed
        first = conn.execute(select(func.min(Resource.id))).scalar()
        conn.execute(update(Resource).where(Resource.id == first)
                     .values(status="archived", updated_at=newer))
    with app.app_context():
        assert resources_last_modified() == newer
    # Whichever way a search reads it (with the page's statement, on its own, or for an
    # empty page), every shape of search answers with the same newest change.
    client = app.test_client()
    for url in ("/api/v1/resources", "/api/v1/resources?near=53.551,10&limit=2",
                "/api/v1/resources?near=53.551,10&radius=5000", "/api/v1/resources?q=listing",
                "/api/v1/resources?near=53.551,10&sort=name",
                "/api/v1/resources?bbox=9.9,53.5,10.1,53.6",
                "/api/v1/resources?open_at=2024-05-06T10:00:00%2B02:00",
                "/api/v1/resources?bbox=0,0,1,1", "/api/v1/resources?near=10,10&radius=5",
                "/ogc/collections/resources/items?limit=1", "/hsds/services"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.headers["Last-Modified"] == "Tue, 07 May 2024 07:08:09 GMT", url


def test_empty_database_has_etag_but_no_last_modified(client):
    r = client.get("/api/v1/resources")
    assert r.status_code == 200 and r.headers["ETag"] and "Last-Modified" not in r.headers


def test_the_read_api_opens_no_session(app):
    """No cookie session below /api/v1, /ogc, /hsds (web pages keep theirs)."""
    from flask import session

    for path, null in (("/api/v1/resources", True), ("/ogc/collections", True),
                       ("/hsds/services", True), ("/", False)):
        with app.test_request_context(path):
            assert app.session_interface.is_null_session(session) is null, path
    client = app.test_client()
    client.set_cookie("session", "not-a-valid-signature")
    r = client.get("/api/v1/resources")
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    assert r.headers["Cache-Control"] == "public, max-age=60"
    # ?lang= is remembered for the pages only: not by the API's HTML docs, its redirects or
    # its OPTIONS answers
    for method, path in (("options", "/api/v1/resources?lang=en"), ("get", "/hsds?lang=ar"),
                         ("get", "/api/v1/docs?lang=fa")):
        r = getattr(client, method)(path)
        assert "Set-Cookie" not in r.headers, (method, path, r.status_code)
        assert "Cookie" not in r.headers.get("Vary", ""), path
    assert "lang=ar" in client.get("/?lang=ar").headers["Set-Cookie"]
    assert client.get("/api/v1/docs").headers["Cache-Control"] == "public, max-age=60"


@pytest.mark.parametrize("backend", ["spatialite"], indirect=True)
def test_error_responses_keep_the_headers_of_their_status(client):
    """RFC 9110: a 405 names the allowed methods (Allow), a 416 the size (Content-Range)."""
    for path in ("/", "/api/v1/resources", "/static/js/map.js"):
        r = client.post(path)
        assert r.status_code == 405
        assert "GET" in r.headers["Allow"], path
    r = client.get("/static/js/map.js", headers={"Range": "bytes=999999-"})
    assert r.status_code == 416
    assert re.fullmatch(r"bytes \*/\d+", r.headers["Content-Range"])
    problem = client.post("/api/v1/resources", headers={"Accept": "application/problem+json"})
    assert problem.mimetype == "application/problem+json" and "GET" in problem.headers["Allow"]


@pytest.mark.parametrize("backend", ["spatialite"], indirect=True)
def test_the_map_page_checks_its_filters_and_ignores_other_parameters(client):
    for query, parameter in [("category=unicorns", "category"), ("wheelchair=maybe",
                             "wheelchair"), ("cost=%ff", "cost"), ("open_now=perhaps",
                             "open_now"), ("district=Atlantis", "district"),
                             ("category=library&category=x", "category")]:
        r = client.get(f"/?lang=en&{query}")
        assert r.status_code == 400, query
        assert r.mimetype == "text/html"
        assert f"(in “{parameter}”)" in r.get_data(as_text=True), query
    # filters the API knows, the view, and what a messenger appends to a shared link
    # an empty field of the filter form (sent without JavaScript) is no filter: the page
    # moves to the address without it
    r = client.get("/?lang=en&q=&category=library&category=&language=&x=")
    assert r.status_code == 303
    assert r.headers["Location"] == "/?lang=en&category=library&x="
    ok = client.get("/?category=library&language=ar&q=haus&district=Altona&open_now=true"
                    "&lat=53.55&lon=9.99&z=14&utm_source=chat&fbclid=abc")
    assert ok.status_code == 200
    assert ok.headers["Cache-Control"] == "private, no-cache"  # its CSP nonce is its own
    assert '"filters": ["category", "language", "audience", "cost", "wheelchair", "q", ' \
           '"district", "open_now"]' in ok.get_data(as_text=True)


def test_filters_kept_from_the_address_read_in_the_pages_language(demo_client):
    # (was: the raw "category=health, district=Altona", English parameter names and codes)
    page = demo_client.get("/?lang=ar&category=counselling&category=health&district=Altona"
                           "&audience=newcomers").get_data(as_text=True)
    kept = page.split('class="ms-kept"')[1].split("</p>")[0]
    assert "<bdi>لمن: القادمون الجدد</bdi>" in kept
    assert "<bdi>الحي أو المنطقة: Altona</bdi>" in kept
    assert "category=" not in kept and "audience=" not in kept
    assert '<input type="hidden" name="audience" value="newcomers">' in page
    # the values of cost, wheelchair and open_now are words too (were "paid", "limited"),
    # joined by the language's own separators (Arabic: "؛" between filters, "،" in one)
    page = demo_client.get("/?lang=ar&cost=free&cost=paid,reduced&wheelchair=yes"
                           "&wheelchair=limited").get_data(as_text=True)
    kept = page.split('class="ms-kept"')[1].split("</p>")[0]
    assert "<bdi>التكلفة: برسوم، بسعر مخفّض</bdi>؛ " in kept, kept
    assert "جزئيًا" in kept and "paid" not in kept and "limited" not in kept
    assert "رابط هذه الصفحة" in kept
    kept = demo_client.get("/?lang=de&wheelchair=no&wheelchair=unknown").get_data(
        as_text=True).split('class="ms-kept"')[1].split("</p>")[0]
    assert "Rollstuhlzugang: Unbekannt" in kept
    # a first value that the panel's checkbox cannot show is named, not hidden (the map
    # filtered by it while the panel showed no filter) and kept when the form is sent
    page = demo_client.get("/?lang=en&wheelchair=limited&cost=free,reduced").get_data(
        as_text=True)
    kept = page.split('class="ms-kept"')[1].split("</p>")[0]
    assert "<bdi>Wheelchair access: Partly</bdi>" in kept
    assert "<bdi>Cost: Free of charge, Reduced price</bdi>" in kept
    assert '<input type="hidden" name="wheelchair" value="limited">' in page
    assert 'value="yes" checked' not in page and 'value="free" checked' not in page
    # open_now is one true/false: a true one ticks the box (kept, it was sent twice when the
    # box was ticked: a 400), a false one filters nothing and is not named
    for raw, ticked in (("1", True), ("yes", True), ("TRUE", True), ("false", False)):
        page = demo_client.get(f"/?lang=en&open_now={raw}").get_data(as_text=True)
        assert 'class="ms-kept"' not in page and 'name="open_now" value="' + raw not in page
        assert ('name="open_now" value="true" checked' in page) == ticked, raw


def test_the_filter_lists_are_sorted_as_people_sort_them(demo_client):
    """Not by code point, which put Ukrainian "Іспанська", Turkish "Çince" and Persian labels
    that start with پ چ ک گ last, and German "Für ältere Menschen" after "Für Frauen"."""
    def options(lang: str, name: str) -> list[str]:
        page = demo_client.get(f"/?lang={lang}").get_data(as_text=True)
        select = page.split(f'name="{name}"')[1].split("</select>")[0]
        return [o.split(">", 1)[1].split("<")[0] for o in select.split("<option")[2:]]

    uk = options("uk", "language")
    assert uk.index("Іспанська") < uk.index("Китайська"), uk
    tr = options("tr", "language")
    assert tr.index("Bulgarca") < tr.index("Çince") < tr.index("Farsça / Darice"), tr
    fa = options("fa", "category")
    assert fa.index("کتابخانه‌ها") < fa.index("مشاوره") < fa.index("ورزش و اوقات فراغت"), fa
    de = options("de", "category")
    assert de.index("Für ältere Menschen") < de.index("Für Frauen"), de
