"""The read API on both backends: formats, filters, paging links, errors as problem+json."""
from __future__ import annotations

import csv
import io

import pytest

from mapservice.demo import load_demo


@pytest.fixture
def demo_client(client, store):
    load_demo(store)
    return client


def test_geojson_default_with_near_and_distance(demo_client):
    r = demo_client.get("/api/v1/resources?near=53.5511,9.9937&limit=5")
    assert r.status_code == 200 and r.mimetype == "application/geo+json"
    doc = r.get_json()
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 5
    dists = [f["properties"]["distance_m"] for f in doc["features"]]
    assert dists == sorted(dists)
    assert any(link["rel"] == "next" for link in doc["links"])
    assert 'rel="next"' in r.headers["Link"]


def test_next_link_pages_through_everything(demo_client, store):
    seen, url = [], "/api/v1/resources?limit=40&category=counselling,support_group"
    while url:
        doc = demo_client.get(url).get_json()
        seen += [f["id"] for f in doc["features"]]
        nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
        url = nxt[0].replace("http://localhost", "") if nxt else None
    assert len(seen) == len(set(seen)) > 0
    for fid in seen[:5]:
        cats = demo_client.get(f"/api/v1/resources/{fid}").get_json()["properties"]["categories"]
        assert {"counselling", "support_group"} & set(cats)


def test_self_and_next_links_are_uris_of_the_query_as_sent(demo_client):
    # repeated parameters and their order kept, non-ASCII percent-encoded, offset replaced
    query = "q=b%C3%BCcher&limit=2&category=library&category=education&offset=0"
    r = demo_client.get(f"/api/v1/resources?{query}", base_url="http://example.org/app/")
    links = {link["rel"]: link["href"] for link in r.get_json()["links"]}
    assert links["self"] == f"http://example.org/app/api/v1/resources?{query}"
    assert links["next"] == ("http://example.org/app/api/v1/resources?q=b%C3%BCcher&limit=2"
                             "&category=library&category=education&offset=2")
    assert r.headers["Link"] == f'<{links["next"]}>; rel="next"'
    following = demo_client.get(links["next"].removeprefix("http://example.org/app"),
                                base_url="http://example.org/app/")
    assert following.status_code == 200 and len(following.get_json()["features"]) >= 1
    last = demo_client.get("/api/v1/resources?limit=1000").get_json()["links"]
    assert [link["rel"] for link in last] == ["self"]


@pytest.mark.parametrize("sort", ["name", "verified"])
def test_near_with_another_order_pages_through_every_match(demo_client, sort):
    # near without radius filters nothing: sorted by name (or verification), every match
    # comes once, in the same order as without near, each with its distance
    from pyproj import Geod

    def everything(url: str) -> list[dict]:
        features = []
        while url:
            doc = demo_client.get(url).get_json()
            features += doc["features"]
            nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
            url = nxt[0].replace("http://localhost", "") if nxt else None
        return features

    near = everything(f"/api/v1/resources?near=53.5511,9.9937&sort={sort}&limit=25")
    plain = everything(f"/api/v1/resources?sort={sort}&limit=1000")
    assert [f["id"] for f in near] == [f["id"] for f in plain] and len(near) > 150
    geod = Geod(ellps="WGS84")
    for f in near:
        lon, lat = f["geometry"]["coordinates"]
        metres = geod.inv(9.9937, 53.5511, lon, lat)[2]
        assert f["properties"]["distance_m"] == pytest.approx(metres, abs=0.2)


def test_json_and_csv_formats(demo_client):
    r = demo_client.get("/api/v1/resources?f=json&limit=3")
    assert r.mimetype == "application/json" and len(r.get_json()["items"]) == 3
    r = demo_client.get("/api/v1/resources?limit=3", headers={"Accept": "text/csv"})
    assert r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) == 3 and rows[0]["name"].startswith("Demo: ")


def test_bbox_and_category_filter(demo_client):
    doc = demo_client.get("/api/v1/resources?bbox=9.9,53.5,10.1,53.6&category=library"
                          "&limit=1000").get_json()
    assert doc["features"]
    for f in doc["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 9.9 <= lon <= 10.1 and 53.5 <= lat <= 53.6
        assert "library" in f["properties"]["categories"]


def test_confidential_listing_has_no_exact_point_or_address(demo_client, store):
    from sqlalchemy import select

    from mapservice.models import Resource

    with store.session() as s:
        secret = s.scalars(select(Resource).where(Resource.location_confidential)).all()
    assert secret, "the demo should contain confidential listings"
    doc = demo_client.get("/api/v1/resources?limit=1000").get_json()
    by_id = {f["id"]: f for f in doc["features"]}
    for res in secret:
        f = by_id[res.uid]
        assert f["properties"]["address"] is None
        assert f["properties"]["location_precision"] == "approximate"
        assert f["geometry"]["coordinates"] != [res.exact_lon, res.exact_lat]
        text = demo_client.get(f"/api/v1/resources/{res.uid}").get_data(as_text=True)
        assert str(res.exact_lat) not in text and str(res.exact_lon) not in text
    # the JSON and CSV forms, also of a search right next to the exact point
    exact = [(res.exact_lat, res.exact_lon) for res in secret]
    for lat, lon in exact[:3]:
        for fmt in ("json", "csv", "geojson"):
            r = demo_client.get(f"/api/v1/resources?near={lat},{lon}&limit=5&f={fmt}")
            # the links repeat the query's own point; the results must not
            body = (r.get_data(as_text=True) if fmt == "csv" else
                    str({k: v for k, v in r.get_json().items() if k != "links"}))
            for exact_lat, exact_lon in exact:
                assert str(exact_lat) not in body and str(exact_lon) not in body, fmt
    items = demo_client.get("/api/v1/resources?f=json&limit=1000").get_json()["items"]
    rows = list(csv.DictReader(io.StringIO(demo_client.get(
        "/api/v1/resources?f=csv&limit=1000").get_data(as_text=True))))
    for res in secret:
        item = next(i for i in items if i["id"] == res.uid)
        row = next(r for r in rows if r["id"] == res.uid)
        assert item["address"] is None and not row["address"]
        assert (item["lat"], item["lon"]) == (by_id[res.uid]["geometry"]["coordinates"][1],
                                              by_id[res.uid]["geometry"]["coordinates"][0])
        assert (float(row["lat"]), float(row["lon"])) == (item["lat"], item["lon"])


def test_sort_verified_is_newest_verification_first_unverified_last(demo_client, store):
    from sqlalchemy import update

    from mapservice.models import Resource

    with store.session() as s, s.begin():  # some listings never verified
        s.execute(update(Resource).where(Resource.id % 7 == 0).values(last_verified=None))
    features = demo_client.get("/api/v1/resources?sort=verified&limit=1000").get_json()[
        "features"]
    dates = [f["properties"]["last_verified"] for f in features]
    known = [d for d in dates if d is not None]
    assert known and len(known) < len(dates)
    assert dates == known + [None] * (len(dates) - len(known))  # unverified last
    assert known == sorted(known, reverse=True)


@pytest.mark.parametrize("query, parameter", [
    ("bbox=1,2,3", "bbox"),
    ("bbox=10,53,9,54", "bbox"),
    ("bbox=a,b,c,d", "bbox"),
    ("near=95,10", "near"),
    ("near=53.5", "near"),
    ("near=53.5,10&radius=-5", "radius"),
    ("radius=100", "radius"),
    ("category=unicorns", "category"),
    ("language=xx", "language"),
    ("wheelchair=maybe", "wheelchair"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=ten", "limit"),
    # int() would take these: not how anyone writes a number in a URL
    ("limit=1_0", "limit"), ("limit=%2B5", "limit"), ("limit=%EF%BC%91%EF%BC%90", "limit"),
    ("offset=%D9%A5", "offset"), ("limit=1e3", "limit"),
    ("offset=-1", "offset"),
    ("sort=random", "sort"),
    ("sort=distance", "sort"),
    ("f=xml", "f"),
    ("f=csv&f=json", "f"),
    ("colour=red", "colour"),
    ("near=nan,nan", "near"),
    # float() would take these too
    ("bbox=9.7,53.39,1_0.3,53.75", "bbox"), ("near=53.5,%EF%BC%91%EF%BC%90", "near"),
    ("near=53.5,infinity", "near"), ("radius=1_000&near=53.5,10", "radius"),
])
def test_invalid_parameters_are_400_problems(client, query, parameter):
    r = client.get(f"/api/v1/resources?{query}")
    assert r.status_code == 400, r.data
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["parameter"] == parameter and body["status"] == 400 and body["detail"]


@pytest.mark.parametrize("path, parameter", [
    ("/api/v1/sources?limit=5", "limit"),
    ("/api/v1/categories?lang=en&lang=ar", "lang"),
    ("/api/v1/geocode?q=Altona&q=Harburg", "q"),
    ("/api/v1/openapi.json?version=2", "version"),
    ("/api/v1/docs?x=1", "x"),
])
def test_other_endpoints_refuse_unknown_and_repeated_parameters(client, path, parameter):
    r = client.get(path)
    assert r.status_code == 400 and r.get_json()["parameter"] == parameter


def test_one_resource_refuses_parameters_it_cannot_honour(demo_client):
    fid = demo_client.get("/api/v1/resources?limit=1").get_json()["features"][0]["id"]
    assert demo_client.get(f"/api/v1/resources/{fid}").status_code == 200
    for query, parameter in (("f=csv", "f"), ("foo=1", "foo"), ("f=geojson&f=geojson", "f")):
        r = demo_client.get(f"/api/v1/resources/{fid}?{query}")
        assert r.status_code == 400 and r.get_json()["parameter"] == parameter
    # the format it gives, named as the OGC item takes it
    r = demo_client.get(f"/api/v1/resources/{fid}?f=geojson")
    assert r.status_code == 200 and r.mimetype == "application/geo+json"


def test_a_negotiated_format_varies_with_accept(demo_client):
    csv_answer = demo_client.get("/api/v1/resources?limit=2", headers={"Accept": "text/csv"})
    assert csv_answer.mimetype == "text/csv"
    assert "Accept" in csv_answer.headers["Vary"].split(", ")
    chosen = demo_client.get("/api/v1/resources?limit=2&f=csv", headers={"Accept": "text/csv"})
    assert chosen.mimetype == "text/csv" and "Accept" not in chosen.headers["Vary"].split(", ")


def test_unknown_id_and_route_are_404_problems(client):
    r = client.get("/api/v1/resources/does-not-exist")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert client.get("/api/v1/nothing").status_code == 404


def test_hostile_strings_are_escaped_on_the_page(client, store):
    store.register_source("t", attribution="<script>alert(1)</script>", licence="x")
    store.upsert([{"source_id": "1", "name": "<img src=x onerror=alert(1)>", "lat": 53.55,
                   "lon": 10.0}], source="t", changed_by="test")
    page = client.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    api = client.get("/api/v1/resources").get_json()
    assert api["features"][0]["properties"]["name"] == "<img src=x onerror=alert(1)>"


def test_security_headers(client):
    r = client.get("/")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert "tiles.invalid" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_inline_scripts_run_only_by_the_pages_nonce(client):
    import re

    nonces = set()
    for _ in range(2):
        r = client.get("/")
        policy = dict(part.strip().split(" ", 1) for part in
                      r.headers["Content-Security-Policy"].split(";"))
        script_src = policy["script-src"].split()
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        (nonce,) = [s[len("'nonce-"):-1] for s in script_src if s.startswith("'nonce-")]
        page = r.get_data(as_text=True)
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page)
        assert len(inline) >= 2 and all(f'nonce="{nonce}"' in attrs for attrs in inline)
        assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers either
        nonces.add(nonce)
    assert len(nonces) == 2  # a new nonce per response
    docs = client.get("/api/v1/docs").headers["Content-Security-Policy"]
    docs_scripts = docs.split("script-src")[1].split(";")[0]
    assert "nonce-" not in docs and "'unsafe-inline'" not in docs_scripts


def test_page_is_a_small_shell_and_names_demo_data(demo_client):
    r = demo_client.get("/?lang=en")
    assert len(r.data) < 30_000
    text = r.get_data(as_text=True)
    assert '<aside class="ms-demo" id="ms-demo-notice" aria-labelledby="ms-demo-title">' in text
    assert "cdn" not in text.lower() and "https://" not in text.replace(
        "https://www.openstreetmap.org/copyright", "")


def test_sources_lists_attribution(demo_client):
    doc = demo_client.get("/api/v1/sources").get_json()
    assert [s["name"] for s in doc["sources"]] == ["demo"]
    assert doc["sources"][0]["licence"] == "CC0-1.0"


# ---- /api/v1/clusters: what the map shows when its area holds more than one page ------------
CITY = "9.7,53.39,10.33,53.75"


def _all(client, query: str) -> list[dict]:
    return client.get(f"/api/v1/resources?limit=1000&{query}").get_json()["features"]


def test_clusters_count_every_match_of_the_filters_per_cell(demo_client):
    r = demo_client.get(f"/api/v1/clusters?bbox={CITY}")
    assert r.status_code == 200 and r.mimetype == "application/geo+json"
    assert r.headers["ETag"] and r.headers["Cache-Control"] == "public, max-age=60"
    doc = r.get_json()
    matches = _all(demo_client, f"bbox={CITY}")
    assert doc["numberMatched"] == len(matches) == sum(
        f["properties"]["count"] for f in doc["features"]) > 150
    assert doc["numberReturned"] == len(doc["features"]) <= 16 * 16
    # each cell sits at the mean of its places: inside the box, and one cell per place at a
    # fine enough grid holds exactly the places (the same filters, the same points)
    for f in doc["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 9.7 <= lon <= 10.33 and 53.39 <= lat <= 53.75
    fine = demo_client.get(f"/api/v1/clusters?bbox=9.95,53.54,10.0,53.57&grid=64"
                           "&category=counselling").get_json()
    places = _all(demo_client, "bbox=9.95,53.54,10.0,53.57&category=counselling")
    assert fine["numberMatched"] == len(places) > 0
    single = sorted(tuple(f["geometry"]["coordinates"]) for f in fine["features"]
                    if f["properties"]["count"] == 1)
    points = {tuple(round(c, 6) for c in p["geometry"]["coordinates"]) for p in places}
    assert single and set(single) <= points
    # the filters are the API's: a narrower query counts fewer
    for query in ("category=library", "language=ar", "q=sprach", "district=Altona",
                  "cost=free&wheelchair=yes", "open_at=2026-03-02T10:00"):
        narrow = demo_client.get(f"/api/v1/clusters?bbox={CITY}&{query}").get_json()
        assert narrow["numberMatched"] == len(_all(demo_client, f"bbox={CITY}&{query}")), \
            query


def test_clusters_keep_their_cells_when_the_map_pans(demo_client):
    def cells(bbox: str) -> dict:
        doc = demo_client.get(f"/api/v1/clusters?bbox={bbox}&grid=8").get_json()
        return {tuple(f["geometry"]["coordinates"]): f["properties"]["count"]
                for f in doc["features"]}

    # boxes of one size (one zoom), panned sideways, up and down: the cells that lie inside
    # both are the same cells, with the same places (the rows moved with the box's middle
    # latitude before)
    import math

    width, height = 0.2, 0.2
    cx = width / 8  # grid=8 along the width; rows: cx times cos(the region's middle latitude)
    cy = cx * math.cos(math.radians((53.39 + 53.97) / 2))
    a = cells(f"9.9,53.45,{9.9 + width},{53.45 + height}")
    for dx, dy in ((0.025, 0), (0, 0.007), (0, -0.011), (0.013, 0.017)):
        b = cells(f"{9.9 + dx},{53.45 + dy},{9.9 + width + dx},{53.45 + height + dy}")
        # a cell whose places' mean lies a whole cell inside both boxes lies inside both: it
        # must come back the same (the same places: the same mean and count)
        west, east = 9.9 + max(dx, 0) + cx, 9.9 + width + min(dx, 0) - cx
        south, north = 53.45 + max(dy, 0) + cy, 53.45 + height + min(dy, 0) - cy
        inner = {key: n for key, n in a.items()
                 if west <= key[0] <= east and south <= key[1] <= north}
        assert len(inner) >= 5, (dx, dy)
        for (lon, lat), n in inner.items():  # (a sum's last bit may differ with the scan order)
            assert any(abs(lon - x) < 3e-6 and abs(lat - y) < 3e-6 and m == n
                       for (x, y), m in b.items()), (dx, dy, lon, lat, n)


@pytest.mark.parametrize("query, parameter", [
    ("", "bbox"), (f"bbox={CITY}&limit=10", "limit"), (f"bbox={CITY}&near=53.5,10", "near"),
    (f"bbox={CITY}&sort=name", "sort"), (f"bbox={CITY}&offset=5", "offset"),
    (f"bbox={CITY}&grid=0", "grid"), (f"bbox={CITY}&grid=65", "grid"),
    (f"bbox={CITY}&grid=1_0", "grid"), (f"bbox={CITY}&grid=8&grid=9", "grid"),
    (f"bbox={CITY}&category=nope", "category"), (f"bbox={CITY}&f=csv", "f"),
    ("bbox=10.3,53.4,9.7,53.7", "bbox"),
])
def test_clusters_refuse_what_they_cannot_do(demo_client, query, parameter):
    r = demo_client.get(f"/api/v1/clusters?{query}")
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert r.get_json()["parameter"] == parameter


def test_a_confidential_place_counts_at_its_approximate_point(demo_client, store):
    from mapservice.store.base import approximate

    store.upsert([{"source_id": "s", "name": "Schutzraum", "lat": 53.71234, "lon": 10.31234,
                   "location_confidential": True}], source="c", changed_by="test")
    doc = demo_client.get("/api/v1/clusters?bbox=10.25,53.68,10.33,53.75&grid=64").get_json()
    assert [(tuple(f["geometry"]["coordinates"]), f["properties"]["count"])
            for f in doc["features"]] == [(approximate(10.31234, 53.71234), 1)]
