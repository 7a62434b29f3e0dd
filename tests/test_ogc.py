"""OGC API – Features under /ogc on both backends: the documents, paging, OGC's limit and error
rules, and real clients (OWSLib, GDAL's OAPIF driver) against a live server with the demo data."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest

from mapservice.demo import load_demo
from mapservice.ogc import CRS84
from mapservice.search import SearchQuery
from mapservice.store import make_store

from .conftest import BACKENDS, _clean
from .live import serve

ITEMS = "/ogc/collections/resources/items"
CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
GEOJSON_CLASS = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"


# The demo data is loaded once per backend; every test here only reads it.
@pytest.fixture(scope="module", params=BACKENDS)
def ogc_app(request, tmp_path_factory):
    from mapservice import create_app

    engine = request.getfixturevalue(f"_{request.param}_engine")
    _clean(engine)
    load_demo(make_store(engine))
    app = create_app({"DATABASE_URL": engine.url.render_as_string(hide_password=False),
                      "INSTANCE_DIR": str(tmp_path_factory.mktemp("instance")),
                      "TESTING": True, "TILE_URL": "http://tiles.invalid/{z}/{x}/{y}.png"})
    yield app
    app.extensions["mapservice"]["engine"].dispose()


@pytest.fixture
def app(ogc_app):
    # Tests may change settings (the page maximum); they are restored after each test.
    saved = dict(ogc_app.config)
    yield ogc_app
    ogc_app.config.clear()
    ogc_app.config.update(saved)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def store(app):
    return app.extensions["mapservice"]["store"]


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _local(href: str) -> str:
    parts = urlsplit(href)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _rel(doc: dict, rel: str) -> list[dict]:
    return [link for link in doc["links"] if link["rel"] == rel]


def _collect(client, url: str) -> tuple[list[str], list[dict]]:
    """Follow ``next`` links from ``url``; return every feature id and every page."""
    ids, pages = [], []
    while url:
        r = client.get(url)
        assert r.status_code == 200 and r.mimetype == "application/geo+json", r.data
        page = r.get_json()
        pages.append(page)
        ids += [f["id"] for f in page["features"]]
        assert page["numberReturned"] == len(page["features"])
        nxt = _rel(page, "next")
        url = _local(nxt[0]["href"]) if nxt else None
    return ids, pages


# ---- the documents --------------------------------------------------------------------------
def test_landing_conformance_and_collections(client):
    for path in ("/ogc", "/ogc/", "/ogc?f=json"):
        r = client.get(path)
        assert r.status_code == 200 and r.mimetype == "application/json", path
    landing = client.get("/ogc").get_json()
    rels = {link["rel"]: link for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["href"].endswith("/api/v1/openapi.json")
    assert rels["service-desc"]["type"].startswith("application/vnd.oai.openapi+json")
    assert _local(rels["data"]["href"]) == "/ogc/collections"

    conformance = client.get(_local(rels["conformance"]["href"]))
    assert conformance.mimetype == "application/json"
    assert {CORE, GEOJSON_CLASS} <= set(conformance.get_json()["conformsTo"])

    collections = client.get("/ogc/collections").get_json()
    assert [c["id"] for c in collections["collections"]] == ["resources"]
    collection = client.get("/ogc/collections/resources").get_json()
    assert collection == collections["collections"][0]
    assert collection["itemType"] == "feature" and collection["crs"] == [CRS84]
    assert collection["extent"]["spatial"]["crs"] == CRS84
    (minlon, minlat, maxlon, maxlat), = collection["extent"]["spatial"]["bbox"]
    # the temporal extent spans the published resources' last changes (what datetime filters)
    temporal = collection["extent"]["temporal"]
    assert temporal["trs"] == "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
    (first, last), = temporal["interval"]
    everything = client.get("/api/v1/resources?f=json&limit=1000").get_json()["items"]
    changed = sorted(item["updated_at"] for item in everything)
    assert first.endswith("Z") and last.endswith("Z")
    assert (_instant(first), _instant(last)) == (_instant(changed[0]), _instant(changed[-1]))
    inside = client.get(f"/ogc/collections/resources/items?datetime={first}/{last}&limit=1000")
    assert len(inside.get_json()["features"]) == len(everything)
    items = _rel(collection, "items")
    assert items and items[0]["type"] == "application/geo+json"
    features = client.get(_local(items[0]["href"]) + "?limit=1000").get_json()["features"]
    assert features
    for f in features:
        lon, lat = f["geometry"]["coordinates"]
        assert minlon <= lon <= maxlon and minlat <= lat <= maxlat, f["id"]


def test_titles_follow_lang_and_accept_language_not_a_cookie(client):
    def title(**kwargs) -> tuple[str, str]:
        r = client.get("/ogc/collections/resources", **kwargs)
        assert "Accept-Language" in r.headers["Vary"]
        return r.get_json()["title"], r.headers["Cache-Control"]

    german, cache = title(headers={"Accept-Language": "de"})
    english, _ = title(headers={"Accept-Language": "en"})
    assert german != english and cache == "public, max-age=60"
    assert title(query_string={"lang": "en"}, headers={"Accept-Language": "de"})[0] == english
    client.set_cookie("lang", "en")  # the map page's choice must not leak into a cached answer
    try:
        assert title(headers={"Accept-Language": "de"})[0] == german
    finally:
        client.delete_cookie("lang")


@pytest.mark.parametrize("path", ["/ogc/collections/unknown", "/ogc/collections/unknown/items",
                                  "/ogc/collections/unknown/items/x",
                                  f"{ITEMS}/00000000-0000-0000-0000-000000000000",
                                  f"{ITEMS}/{'a' * 200}", f"{ITEMS}/%00", "/ogc/nothing"])
def test_unknown_things_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.mimetype == "application/problem+json", r.data
    problem = r.get_json()
    assert problem["status"] == 404 and problem["code"] and problem["description"]


def test_other_http_errors_carry_the_ogc_exception_members(client):
    r = client.post(ITEMS)
    assert r.status_code == 405 and r.get_json()["code"] == "MethodNotAllowed"
    assert r.get_json()["description"]


@pytest.mark.parametrize("query, parameter", [
    ({"lang": "xx"}, "lang"), ({"lang": ""}, "lang"), ({"lang": "<b>"}, "lang"),
    ([("lang", "de"), ("lang", "en")], "lang"), ([("f", "json"), ("f", "geojson")], "f")])
def test_lang_and_f_are_checked_not_ignored(client, query, parameter):
    for path in ("/ogc", "/ogc/collections/resources", ITEMS):
        r = client.get(path, query_string=query)
        assert r.status_code == 400, (path, query)
        assert r.get_json()["parameter"] == parameter
    # a region is the language's: en-GB is English
    assert client.get(ITEMS, query_string={"lang": "en-GB", "limit": 1}).status_code == 200


def test_one_item(client):
    first = client.get(f"{ITEMS}?limit=1").get_json()["features"][0]
    r = client.get(f"{ITEMS}/{first['id']}")
    assert r.status_code == 200 and r.mimetype == "application/geo+json"
    doc = r.get_json()
    assert doc["type"] == "Feature" and doc["id"] == first["id"]
    assert doc["geometry"] == first["geometry"] and doc["properties"] == first["properties"]
    assert {"self", "collection"} <= {link["rel"] for link in doc["links"]}
    # Whole seconds in UTC: GDAL's reader rounds a fraction like .9996 up to an invalid 1000 ms.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["properties"]["updated_at"])
    assert client.get(f"{ITEMS}/{first['id']}?f=geojson").status_code == 200


# ---- items: paging, limit, filters ------------------------------------------------------------
def test_next_links_page_through_each_feature_once(client, store):
    ids, pages = _collect(client, f"{ITEMS}?limit=25")
    assert len(ids) == len(set(ids)) == store.count() == 194
    assert len(pages) == 8
    for number, page in enumerate(pages):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", page["timeStamp"])
        assert all(link["type"] == "application/geo+json"
                   for link in page["links"] if link["rel"] in ("self", "next", "prev"))
        self_args = parse_qs(urlsplit(_rel(page, "self")[0]["href"]).query)
        assert self_args["offset"] == [str(25 * number)] and self_args["limit"] == ["25"]
        prev = _rel(page, "prev")
        if number == 0:
            assert not prev
        else:
            prev_args = parse_qs(urlsplit(prev[0]["href"]).query)
            assert prev_args["offset"] == [str(25 * (number - 1))]
    # The total comes for free on the last page only: no count query per request.
    assert "numberMatched" not in pages[0] and pages[-1]["numberMatched"] == 194


def test_limit_above_the_maximum_is_clamped(client, app):
    app.config["MAX_PAGE_SIZE"] = 30
    r = client.get(f"{ITEMS}?limit=100000")
    assert r.status_code == 200
    page = r.get_json()
    assert page["numberReturned"] == len(page["features"]) == 30
    assert parse_qs(urlsplit(_rel(page, "next")[0]["href"]).query)["limit"] == ["30"]
    # the links as Link headers too (OGC /rec/core/link-header)
    header = r.headers["Link"]
    assert f'<{_rel(page, "next")[0]["href"]}>; rel="next"; type="application/geo+json"' \
        in header and 'rel="self"' in header and 'rel="collection"' in header
    ids, _ = _collect(client, f"{ITEMS}?limit=100000")
    assert len(ids) == len(set(ids)) == 194


def test_a_limit_of_any_length_is_clamped_and_a_box_with_heights_is_its_ground_plan(client):
    """OGC API - Features: a limit above the maximum "SHALL NOT result in an error" (one of
    23 digits was a 400); a bbox of six numbers SHALL be understood (was a 400); GDAL 3.6
    sends a date as "2026-01-01T" in its datetime filter (was a 400)."""
    huge = client.get(f"{ITEMS}?limit=99999999999999999999999")
    assert huge.status_code == 200 and huge.get_json()["numberReturned"] == 194
    flat = client.get(f"{ITEMS}?bbox=9.9,53.5,10.1,53.6&limit=1000").get_json()
    high = client.get(f"{ITEMS}?bbox=9.9,53.5,0,10.1,53.6,100&limit=1000").get_json()
    assert flat["features"] and [f["id"] for f in high["features"]] == [
        f["id"] for f in flat["features"]]
    gdal = client.get(f"{ITEMS}?datetime=2000-01-01T/..&limit=5")
    assert gdal.status_code == 200 and gdal.get_json()["numberReturned"] == 5
    none = client.get(f"{ITEMS}?datetime=2999-01-01T/..").get_json()
    assert none["features"] == []


def test_default_limit_is_the_page_size(client, app):
    page = client.get(ITEMS).get_json()
    assert page["numberReturned"] == app.config["PAGE_SIZE"]


def test_bbox_and_property_filters_match_the_api(client):
    query = ("bbox=9.9,53.5,10.1,53.6&category=counselling,support_group&language=ar"
             "&wheelchair=yes,limited&limit=1000")
    ogc = client.get(f"{ITEMS}?{query}&bbox-crs={CRS84}").get_json()
    api = client.get(f"/api/v1/resources?{query}").get_json()
    assert ogc["features"] and [f["id"] for f in ogc["features"]] == [
        f["id"] for f in api["features"]]
    assert ogc["numberMatched"] == len(ogc["features"])
    for f in ogc["features"]:
        lon, lat = f["geometry"]["coordinates"]
        props = f["properties"]
        assert 9.9 <= lon <= 10.1 and 53.5 <= lat <= 53.6
        assert {"counselling", "support_group"} & set(props["categories"])
        assert "ar" in props["languages"] and props["wheelchair"] in ("yes", "limited")
    everything = client.get(f"{ITEMS}?limit=1000").get_json()["features"]
    assert len(ogc["features"]) < len(everything)
    nothing = client.get(f"{ITEMS}?bbox=0,0,0.1,0.1").get_json()
    assert nothing["features"] == [] and nothing["numberMatched"] == 0


def test_a_bbox_across_the_antimeridian_is_two_boxes(client):
    """OGC API - Features: a minlon greater than maxlon spans the antimeridian (minlon..180
    and -180..maxlon). /api/v1 refuses such a box (400), as its errors are specified."""
    everything = client.get(f"{ITEMS}?limit=1000").get_json()["features"]

    def ids(bbox):
        page = client.get(f"{ITEMS}?bbox={bbox}&limit=1000").get_json()
        assert page["numberMatched"] == page["numberReturned"]
        return {f["id"] for f in page["features"]}

    def inside(pred):
        return {f["id"] for f in everything if pred(*f["geometry"]["coordinates"])}

    # from 170° east across the antimeridian to 10.0° east: Hamburg's west
    assert ids("170,53.5,10.0,53.6") == ids("-180,53.5,10.0,53.6") == inside(
        lambda lon, lat: lon <= 10.0 and 53.5 <= lat <= 53.6) != set()
    # all the way round but a strip of 0.05°: everything outside the strip
    outside_strip = inside(lambda lon, lat: (lon >= 10.05 or lon <= 10.0)
                           and 53.4 <= lat <= 53.7)
    assert ids("10.05,53.4,10.0,53.7") == outside_strip
    assert outside_strip and outside_strip != inside(lambda lon, lat: 53.4 <= lat <= 53.7)
    # the same box on /api/v1: an error naming the parameter
    r = client.get("/api/v1/resources?bbox=170,53.5,10.0,53.6")
    assert r.status_code == 400 and r.get_json()["parameter"] == "bbox"


@pytest.mark.parametrize("query, parameter", [
    ("bbox=1,2,3", "bbox"),
    ("bbox=9,53,100,10,54,0", "bbox"),  # six numbers: heights the wrong way round
    ("bbox=9,53,0,10,54,x", "bbox"),
    ("bbox=10,54,9,53", "bbox"),  # minlat > maxlat (minlon > maxlon spans the antimeridian)
    ("bbox=190,53,9,54", "bbox"),
    ("bbox=a,b,c,d", "bbox"),
    ("bbox=9,53,10,54&bbox=9,53,10,54", "bbox"),
    ("bbox=9,53,10,54&bbox-crs=http://www.opengis.net/def/crs/EPSG/0/3857", "bbox-crs"),
    ("limit=0", "limit"),
    ("limit=ten", "limit"),
    ("limit=1_0", "limit"), ("limit=%EF%BC%91%EF%BC%90", "limit"),
    ("limit=5&limit=6", "limit"),
    ("offset=-1", "offset"),
    ("category=unicorns", "category"),
    ("wheelchair=maybe", "wheelchair"),
    ("cost=cheap", "cost"),
    ("near=53.5,10", "near"),
    ("datetime=2024-13-01T00:00:00Z", "datetime"),
    ("datetime=2024-05-02/2024-05-01", "datetime"),
    ("datetime=2024-05-01/2024-05-02/2024-05-03", "datetime"),
    ("datetime=..", "datetime"),
    ("datetime=yesterday", "datetime"),
    ("colour=red", "colour"),
    ("f=xml", "f"),
])
def test_invalid_item_parameters_are_400(client, query, parameter):
    r = client.get(f"{ITEMS}?{query}")
    assert r.status_code == 400, r.data
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["code"] == "InvalidParameterValue" and body["parameter"] == parameter
    assert body["description"] and body["status"] == 400


def test_datetime_filters_by_the_last_change(client, store):
    # OGC Core: datetime selects the features whose temporal property (here updated_at, shown
    # as whole seconds in UTC) intersects the instant or interval
    import datetime as dt

    from sqlalchemy import select, update

    from mapservice.models import Resource

    base = dt.datetime(2025, 3, 30, 23, 30, 0, 250_000, tzinfo=dt.timezone.utc)
    with store.session() as s, s.begin():
        saved = dict(s.execute(select(Resource.id, Resource.updated_at)).all())
        for rid in saved:  # one listing every 20 minutes, across a day boundary
            s.execute(update(Resource).where(Resource.id == rid)
                      .values(updated_at=base + dt.timedelta(minutes=20 * (rid % 12))))
    try:
        items = client.get(f"{ITEMS}?limit=1000").get_json()["features"]
        changed = {f["id"]: f["properties"]["updated_at"] for f in items}
        stamps = sorted(set(changed.values()))
        assert len(stamps) == 12 and stamps[0] == "2025-03-30T23:30:00Z"

        def ids(datetime: str) -> set[str]:
            found, _pages = _collect(client, f"{ITEMS}?datetime={datetime}&limit=50")
            return set(found)

        def where(test) -> set[str]:
            return {fid for fid, stamp in changed.items() if test(stamp)}

        mid = stamps[5]
        assert ids(mid) == where(lambda t: t == mid) != set()
        assert ids(f"{stamps[2]}/{stamps[6]}") == where(lambda t: stamps[2] <= t <= stamps[6])
        assert ids(f"../{mid}") == where(lambda t: t <= mid)
        assert ids(f"{mid}/..") == ids(f"{mid}/") == where(lambda t: t >= mid)
        assert ids("../..") == set(changed)
        # a date is its whole day in Hamburg (CEST from 30 March: UTC+2): 31 March local
        # runs from 2025-03-30T22:00Z to 2025-03-31T22:00Z
        assert ids("2025-03-31") == where(lambda t: "2025-03-30T22:00:00Z" <= t
                                          < "2025-03-31T22:00:00Z") == set(changed)
        assert ids("2025-03-30") == set()
        # with the offset written out, and combined with another filter and with updated_since
        assert ids(mid.replace("Z", "+00:00").replace("+", "%2B")) == ids(mid)
        library = {f["id"] for f in client.get(f"{ITEMS}?category=library&limit=1000"
                                                ).get_json()["features"]}
        both, _ = _collect(client, f"{ITEMS}?category=library&datetime=../{mid}&limit=50")
        assert set(both) == library & where(lambda t: t <= mid)
        later, _ = _collect(client, f"{ITEMS}?updated_since={stamps[8]}&datetime=../{mid}")
        assert later == []
    finally:
        with store.session() as s, s.begin():
            for rid, when in saved.items():
                s.execute(update(Resource).where(Resource.id == rid).values(updated_at=when))


@pytest.mark.parametrize("path", ["/ogc?colour=red", "/ogc/conformance?limit=5",
                                  "/ogc/collections?f=xml", "/ogc/collections/resources?bbox=1"])
def test_unknown_parameters_on_other_paths_are_400(client, path):
    r = client.get(path)
    assert r.status_code == 400 and r.get_json()["code"] == "InvalidParameterValue"


def test_confidential_places_only_approximate(client, store):
    from sqlalchemy import select

    from mapservice.models import Resource

    with store.session() as s:
        secret = s.scalars(select(Resource).where(Resource.location_confidential)).all()
    assert secret
    text = client.get(f"{ITEMS}?limit=1000").get_data(as_text=True)
    by_id = {f["id"]: f for f in json.loads(text)["features"]}
    for res in secret:
        f = by_id[res.uid]
        assert f["properties"]["address"] is None
        assert f["properties"]["location_precision"] == "approximate"
        assert str(res.exact_lat) not in text and str(res.exact_lon) not in text
        one = client.get(f"{ITEMS}/{res.uid}").get_data(as_text=True)
        assert str(res.exact_lat) not in one and str(res.exact_lon) not in one


# ---- real clients against a live server -----------------------------------------------------
@pytest.fixture
def live(app):
    app.config["MAX_PAGE_SIZE"] = 50  # clients must page through next links to see all 194
    with serve(app) as base:
        yield base


def test_owslib_reads_the_collection(live):
    from owslib.ogcapi.features import Features

    service = Features(f"{live}/ogc")
    assert service.feature_collections() == ["resources"]
    assert CORE in service.conformance()["conformsTo"]
    collection = service.collection("resources")
    assert collection["extent"]["spatial"]["crs"] == CRS84
    items = service.collection_items("resources", bbox=[9.9, 53.5, 10.1, 53.6], limit=5)
    assert items["numberReturned"] == len(items["features"]) == 5
    for f in items["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 9.9 <= lon <= 10.1 and 53.5 <= lat <= 53.6
    assert service.response_headers["Content-Type"].startswith("application/geo+json")
    clamped = service.collection_items("resources", limit=100000)
    assert clamped["numberReturned"] == 50


# GDAL runs in a child process: pyogrio holds the GIL while GDAL fetches pages, so in this
# process it would wait forever on the server thread.
_GDAL_READ = """
import json, sys
import pyogrio
from pyogrio.raw import read
url = "OAPIF:" + sys.argv[1] + "/ogc"
layers = [str(name) for name, _ in pyogrio.list_layers(url)]
meta, _, geometry, fields = read(url, layer="resources")
ids = list(fields[list(meta["fields"]).index("id")])
_, _, _, inside = read(url, layer="resources", bbox=(9.9, 53.5, 10.1, 53.6))
print(json.dumps({"layers": layers, "crs": meta["crs"], "ids": ids,
                  "geometries": len(geometry), "inside": len(inside[0])}))
"""


def test_gdal_oapif_driver_reads_every_feature(live, store):
    env = {**os.environ, "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
           "CPL_DEBUG": "OFF"}
    done = subprocess.run([sys.executable, "-c", _GDAL_READ, live], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["layers"] == ["resources"] and result["crs"] == "EPSG:4326"
    assert len(result["ids"]) == len(set(result["ids"])) == result["geometries"]
    assert len(result["ids"]) == store.count() == 194
    inside = store.search(SearchQuery(bbox=(9.9, 53.5, 10.1, 53.6), limit=1000)).hits
    assert result["inside"] == len(inside) > 50
