"""The OpenAPI document: valid, complete, in step with the code (parameters, enums, bounds,
routes) for ``/api/v1`` and the OGC API under ``/ogc`` (whose landing page names it as its
``service-desc``), its reference page self-hosted, and the live APIs conforming to it
(schemathesis, on both backends)."""
from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_30

from mapservice import create_app, ogc
from mapservice.api import FORMATS
from mapservice.api.openapi import RESOURCE_QUERY, build_document
from mapservice.models import COSTS, WHEELCHAIR
from mapservice.search import MAX_RADIUS_M, SORTS
from mapservice.settings import load as load_settings
from mapservice.taxonomy import default as default_taxonomy

from .live import serve
from .test_http import ensure_demo

# A valid value for every documented query parameter (the demo data lies in Hamburg).
VALID = {
    "near": "53.5511,9.9937", "radius": "2000", "bbox": "9.9,53.5,10.1,53.6", "q": "Demo",
    "category": "library", "audience": "everyone", "language": "de", "cost": "free",
    "wheelchair": "yes", "open_now": "true", "open_at": "2025-05-06T17:30:00+02:00",
    "district": "Altona,st pauli", "updated_since": "2025-01-01", "sort": "name", "limit": "5",
    "offset": "0", "f": "json", "lang": "en", "bbox-crs": ogc.CRS84,
    "datetime": "2025-01-01T00:00:00Z/..",
}
VALID_FOR = {"/api/v1/geocode": {"q": "22765"}}
# parameters (or values: sort=distance) that only make sense with another
NEEDS = {"radius": {"near": VALID["near"]}, "sort": {"near": VALID["near"]}}
API_PATHS = ["/api/v1/resources", "/api/v1/categories", "/api/v1/districts", "/api/v1/geocode"]
OGC_ITEMS = "/ogc/collections/{collectionId}/items"
OGC_ITEM = "/ogc/collections/{collectionId}/items/{featureId}"
OGC_PATHS = ["/ogc/", "/ogc/conformance", "/ogc/collections", "/ogc/collections/{collectionId}",
             OGC_ITEMS, OGC_ITEM]
# An id no resource has: the item path answers 404 "no published resource", which it only
# does after its parameters passed (unknown ones and a bad ``f`` are a 400 first).
NO_SUCH_ID = "00000000-0000-0000-0000-000000000000"
ENGLISH = {"Accept-Language": "en"}  # the 400 details below are parsed in English


@pytest.fixture(scope="module")
def doc_app(tmp_path_factory):
    """An app for the document alone: serving it touches no database."""
    app = create_app({"DATABASE_URL": "sqlite://", "TESTING": True,
                      "INSTANCE_DIR": str(tmp_path_factory.mktemp("instance"))})
    yield app
    app.extensions["mapservice"]["engine"].dispose()


@pytest.fixture(scope="module")
def doc(doc_app) -> dict[str, Any]:
    r = doc_app.test_client().get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.get_json()


def _param(doc: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    return doc["components"]["parameters"][ref["$ref"].rsplit("/", 1)[1]]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _query_params(doc: dict[str, Any], path: str) -> dict[str, dict[str, Any]]:
    params = (_param(doc, ref) for ref in doc["paths"][path]["get"].get("parameters", []))
    return {p["name"]: p for p in params if p["in"] == "query"}


def _query_refs(doc: dict[str, Any], path: str) -> dict[str, str]:
    """Query parameter name -> the component documenting it."""
    return {_param(doc, ref)["name"]: ref["$ref"]
            for ref in doc["paths"][path]["get"].get("parameters", [])
            if _param(doc, ref)["in"] == "query"}


def _concrete(path: str, feature_id: str = NO_SUCH_ID) -> str:
    return path.replace("{collectionId}", ogc.COLLECTION).replace("{featureId}", feature_id)


def _detail_list(response, marker: str) -> set[str]:
    """The comma-separated names after ``marker`` in a 400's detail ("known: a, b")."""
    assert response.status_code == 400, response.data
    return {name.strip() for name in response.get_json()["detail"].split(marker, 1)[1]
            .split(",")}


def _json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema (``nullable`` -> a null type; the rest is the
    same), refs left pointing into ``#/components/schemas``."""
    if isinstance(node, dict):
        out = {key: _json_schema(value) for key, value in node.items()
               if key not in ("nullable", "discriminator", "example")}
        if node.get("nullable"):
            out = {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_json_schema(value) for value in node]
    return node


def _validator(doc: dict[str, Any], name: str):
    return jsonschema_rs.Draft4Validator({
        "$ref": f"#/components/schemas/{name}",
        "components": {"schemas": _json_schema(doc["components"]["schemas"])}})


# ---- the document itself -------------------------------------------------------------------
def test_document_is_valid_openapi_30(doc):
    assert doc["openapi"].startswith("3.0.")
    errors = [e.message for e in jsonschema_rs.validator_for(OPENAPI_30).iter_errors(doc)]
    assert not errors, errors[:5]


def test_every_reference_resolves(doc):
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in set(refs(doc)):
        _, _, kind, name = ref.split("/")
        assert name in doc["components"][kind], ref


def test_enums_come_from_taxonomy_and_models(doc):
    taxonomy = default_taxonomy()
    q = _query_params(doc, "/api/v1/resources")
    assert q["category"]["schema"]["items"]["enum"] == list(taxonomy.categories)
    assert q["audience"]["schema"]["items"]["enum"] == list(taxonomy.audiences)
    assert q["language"]["schema"]["items"]["enum"] == list(taxonomy.languages)
    assert q["cost"]["schema"]["items"]["enum"] == list(COSTS)
    assert q["wheelchair"]["schema"]["items"]["enum"] == list(WHEELCHAIR)
    assert q["sort"]["schema"]["enum"] == list(SORTS)
    assert q["f"]["schema"]["enum"] == list(FORMATS)
    assert _query_params(doc, "/api/v1/categories")["lang"]["schema"]["enum"] == list(
        taxonomy.ui_languages)
    assert q["radius"]["schema"]["maximum"] == MAX_RADIUS_M
    params = doc["components"]["parameters"]
    assert params["ogc_lang"]["schema"]["enum"] == list(taxonomy.ui_languages)
    assert params["bbox_crs"]["schema"]["enum"] == [ogc.CRS84]
    assert params["collectionId"]["schema"]["enum"] == [ogc.COLLECTION]
    schemas = doc["components"]["schemas"]
    assert schemas["OgcConformance"]["properties"]["conformsTo"]["items"]["enum"] == list(
        ogc.CONFORMANCE)


def test_page_sizes_follow_the_settings(tmp_path):
    app = create_app({"DATABASE_URL": "sqlite://", "INSTANCE_DIR": str(tmp_path / "i"),
                      "PAGE_SIZE": 7, "MAX_PAGE_SIZE": 70})
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    limit = _query_params(doc, "/api/v1/resources")["limit"]["schema"]
    assert (limit["default"], limit["maximum"]) == (7, 70)
    ogc_limit = _query_params(doc, OGC_ITEMS)["limit"]
    assert ogc_limit["schema"]["default"] == 7 and "maximum" not in ogc_limit["schema"]
    assert "70" in ogc_limit["description"]
    app.extensions["mapservice"]["engine"].dispose()


def test_every_api_route_is_documented_and_vice_versa(doc_app, doc):
    def shape(path: str) -> str:
        return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)

    routes = {shape(rule.rule) for rule in doc_app.url_map.iter_rules()
              if rule.rule.startswith(("/api/v1/", "/ogc/", "/hsds/"))
              and "GET" in (rule.methods or ())}
    documented = {shape(path) for path in doc["paths"]}
    assert routes == documented
    assert doc["servers"] == [{"url": "/", "description": doc["servers"][0]["description"]}]


def test_every_operation_has_one_known_tag(doc):
    tags = [tag["name"] for tag in doc["tags"]]
    assert len(tags) == len(set(tags))
    for path, item in doc["paths"].items():
        assert len(item["get"]["tags"]) == 1 and item["get"]["tags"][0] in tags, path
        assert item["get"]["tags"][0] == "OGC API – Features" or not path.startswith("/ogc")


def test_the_ogc_landing_page_points_here(client, doc):
    landing = client.get("/ogc/").get_json()
    desc, = [link for link in landing["links"] if link["rel"] == "service-desc"]
    assert desc["href"].endswith("/api/v1/openapi.json")
    assert doc["openapi"].startswith("3.0.") and desc["type"].endswith("version=3.0")
    oas30 = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30"
    assert oas30 in client.get("/ogc/conformance").get_json()["conformsTo"]


# ---- the parameters the code accepts = the parameters documented ---------------------------
def test_resource_parameters_match_what_the_code_accepts(client, doc):
    documented = set(_query_params(doc, "/api/v1/resources"))
    assert documented == set(RESOURCE_QUERY)
    # the code names every parameter it knows when it refuses an unknown one
    r = client.get("/api/v1/resources?no_such_parameter=1")
    assert r.status_code == 400 and r.get_json()["parameter"] == "no_such_parameter"
    known = {name.strip() for name in r.get_json()["detail"].split("known:", 1)[1].split(",")}
    assert known == documented


@pytest.mark.parametrize("path", OGC_PATHS)
def test_ogc_parameters_match_what_the_code_accepts(client, doc, path):
    """The query parameters documented for an OGC path are the ones the blueprint accepts
    (its constants and the list its 400 names), and ``f`` has the formats it accepts."""
    documented = set(_query_params(doc, path))
    code = ogc.ITEMS_PARAMS if path == OGC_ITEMS else ogc.COMMON_PARAMS
    assert documented == set(code)
    url = _concrete(path)
    known = _detail_list(client.get(url, query_string={"no_such_parameter": "1"},
                                    headers=ENGLISH), "known:")
    assert known == documented
    allowed = _detail_list(client.get(url, query_string={"f": "xml"}, headers=ENGLISH),
                           "allowed:")
    assert allowed == set(_query_params(doc, path)["f"]["schema"]["enum"])


HSDS_LISTS = ["/hsds/", "/hsds/services", "/hsds/service_at_locations", "/hsds/organizations",
              "/hsds/taxonomies", "/hsds/taxonomy_terms"]


@pytest.mark.parametrize("path", HSDS_LISTS)
def test_hsds_parameters_match_what_the_code_accepts(client, doc, path):
    """The query parameters documented for an /hsds path are those the blueprint accepts (the
    list its 400 names), and each documented one is accepted with a valid value."""
    documented = set(_query_params(doc, path))
    known = _detail_list(client.get(path, query_string={"no_such_parameter": "1"},
                                    headers=ENGLISH), "supported here:")
    assert known == (documented or {"none"})
    categories = client.get("/hsds/taxonomies").get_json()["contents"][0]
    assert categories["name"] == "mapservice"  # the categories
    term = client.get("/hsds/taxonomy_terms", query_string={
        "taxonomy_id": categories["id"], "per_page": "1"}).get_json()["contents"][0]
    values = {"page": "1", "per_page": "5", "search": "Demo", "modified_after": "2020-01-01",
              "taxonomy_id": categories["id"], "taxonomy_term_id": term["id"],
              "organization_id": "4f0c1d2e-0000-4000-8000-000000000000"}
    for name in documented:
        r = client.get(path, query_string={name: values[name]})
        assert r.status_code == 200, (name, r.data)


def test_hsds_answers_match_their_documented_schemas(app, engine, doc):
    ensure_demo(engine)
    client = app.test_client()
    for path, schema in (("/hsds/", "HsdsApiInfo"), ("/hsds/services", "HsdsServicePage"),
                         ("/hsds/service_at_locations", "HsdsServiceAtLocationPage"),
                         ("/hsds/organizations", "HsdsOrganizationPage"),
                         ("/hsds/taxonomies", "HsdsTaxonomyPage"),
                         ("/hsds/taxonomy_terms", "HsdsTaxonomyTermPage")):
        body = client.get(path).get_json()
        errors = [e.message for e in _validator(doc, schema).iter_errors(body)]
        assert not errors, (path, errors[:3])
        if "contents" in body:
            assert body["contents"], path  # the demo has some of each
            item = client.get(f"{path}/{body['contents'][0]['id']}")
            assert item.status_code == 200, path
            errors = [e.message for e in
                      _validator(doc, schema.removesuffix("Page")).iter_errors(item.get_json())]
            assert not errors, (path, errors[:3])


def test_ogc_filters_are_the_resource_filters(doc):
    """The filters of the items are documented by the very components of /api/v1/resources
    (same codes, same bounds), because the code parses both with ``parse_search``."""
    items, resources = _query_refs(doc, OGC_ITEMS), _query_refs(doc, "/api/v1/resources")
    for name in (*ogc.FILTERS, "offset"):
        assert items[name] == resources[name], name


def _accepted(client, path: str, args: dict[str, str]) -> bool:
    r = client.get(_concrete(path), query_string=args)
    if path == OGC_ITEM and r.status_code == 404:  # the parameters passed, the id is unknown
        return r.get_json()["code"] == "NotFound"
    return r.status_code == 200


@pytest.mark.parametrize("path", [*API_PATHS, *OGC_PATHS])
def test_every_documented_parameter_is_accepted(client, doc, path):
    values = {**VALID, **VALID_FOR.get(path, {})}
    params = _query_params(doc, path)
    required = {name: values[name] for name, p in params.items() if p.get("required")}
    for name in [*params, None]:
        args = {**required, **NEEDS.get(name or "", {}), **({name: values[name]} if name else {})}
        assert _accepted(client, path, args), (path, args)
    # Every value of a single-valued enum (formats, languages, sort, CRS), too; the code lists
    # come from the taxonomy and the models (test_enums_come_from_taxonomy_and_models).
    for name, param in params.items():
        for value in param["schema"].get("enum", []):
            args = {**required, **NEEDS.get(name, {}), name: value}
            assert _accepted(client, path, args), (path, name, value)


@pytest.mark.parametrize("path, name, bound", [
    ("/api/v1/resources", "limit", "minimum"), ("/api/v1/resources", "limit", "maximum"),
    ("/api/v1/resources", "offset", "minimum"), ("/api/v1/resources", "offset", "maximum"),
    ("/api/v1/resources", "radius", "maximum"),
    (OGC_ITEMS, "limit", "minimum"), (OGC_ITEMS, "offset", "minimum"),
    (OGC_ITEMS, "offset", "maximum")])
def test_documented_bounds_are_the_code_bounds(client, doc, path, name, bound):
    edge = _query_params(doc, path)[name]["schema"][bound]
    outside = edge - 1 if bound == "minimum" else edge + 1
    extra = {"near": "53.55,10"} if name == "radius" else {}
    ok = client.get(_concrete(path), query_string={**extra, name: _num(edge)})
    assert ok.status_code == 200, ok.data
    bad = client.get(_concrete(path), query_string={**extra, name: _num(outside)})
    assert bad.status_code == 400 and bad.get_json()["parameter"] == name


def test_ogc_limit_above_the_maximum_is_clamped_as_documented(client, doc):
    """OGC: a limit above the maximum is lowered to it, not refused. The document has no
    ``maximum`` for it (a client may send more) and says what the maximum is."""
    limit = _query_params(doc, OGC_ITEMS)["limit"]
    maximum = client.application.config["MAX_PAGE_SIZE"]
    assert "maximum" not in limit["schema"] and f"{maximum}" in limit["description"]
    assert _query_params(doc, "/api/v1/resources")["limit"]["schema"]["maximum"] == maximum
    for asked in (maximum + 1, 10 * maximum):
        r = client.get(_concrete(OGC_ITEMS), query_string={"limit": str(asked)})
        assert r.status_code == 200, r.data
        self_link, = [link for link in r.get_json()["links"] if link["rel"] == "self"]
        assert f"limit={maximum}&" in self_link["href"] + "&"
        assert r.get_json()["numberReturned"] <= maximum


def test_undocumented_ogc_values_are_refused(client, doc):
    """What the document leaves out is refused: another CRS for bbox, another collection."""
    crs = _query_params(doc, OGC_ITEMS)["bbox-crs"]["schema"]["enum"]
    r = client.get(_concrete(OGC_ITEMS), query_string={
        "bbox": "9,53,10,54", "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/3857"})
    assert crs == [ogc.CRS84] and r.status_code == 400
    assert r.get_json()["parameter"] == "bbox-crs"
    for path in OGC_PATHS[3:]:
        r = client.get(path.replace("{collectionId}", "other").replace("{featureId}", "x"))
        assert r.status_code == 404 and r.mimetype == "application/problem+json", path
    bbox = _query_params(doc, OGC_ITEMS)["bbox"]["schema"]
    assert (bbox["minItems"], bbox["maxItems"]) == (4, 6)  # six: a box with heights (OGC)
    for numbers in ("9,53,10,54,0", "9,53,0,10,54,100,7"):
        r = client.get(_concrete(OGC_ITEMS), query_string={"bbox": numbers})
        assert r.status_code == 400 and r.get_json()["parameter"] == "bbox"


def test_documented_text_length_is_the_code_limit(client, doc):
    longest = _query_params(doc, "/api/v1/resources")["q"]["schema"]["maxLength"]
    assert client.get("/api/v1/resources", query_string={"q": "a" * longest}).status_code == 200
    r = client.get("/api/v1/resources", query_string={"q": "a" * (longest + 1)})
    assert r.status_code == 400 and r.get_json()["parameter"] == "q"


def test_radius_must_be_positive(client, doc):
    schema = _query_params(doc, "/api/v1/resources")["radius"]["schema"]
    assert schema["minimum"] == 0 and schema["exclusiveMinimum"] is True
    r = client.get("/api/v1/resources?near=53.55,10&radius=0")
    assert r.status_code == 400 and r.get_json()["parameter"] == "radius"


# ---- the shapes of the lookups --------------------------------------------------------------
GEOCODE_QUERIES = ["22765", "20095 Hamburg", "eimsbuettel", "St. Pauli", "alt",
                   "Große Bergstraße 12", "Demo-Träger Krisenhilfe Hamburg", "zzz"]


def test_districts_have_exactly_the_documented_shape(client, doc):
    body = client.get("/api/v1/districts").get_json()
    validator = _validator(doc, "Districts")
    assert validator.is_valid(body), list(validator.iter_errors(body))[:3]
    assert body["districts"] and all(d["type"] == "bezirk" and d["stadtteile"]
                                     for d in body["districts"])
    # The schema is tight: the old names of the place type, a missing member or an extra
    # one are caught.
    first = body["districts"][0]
    renamed = {("level" if k == "type" else k): v for k, v in first.items()}
    for broken in (renamed, {**first, "extra": 1},
                   {k: v for k, v in first.items() if k != "stadtteile"},
                   {**first, "stadtteile": [{**first["stadtteile"][0], "type": "bezirk"}]}):
        assert not validator.is_valid({"districts": [broken]}), broken


@pytest.mark.parametrize("q", GEOCODE_QUERIES)
def test_geocode_has_exactly_the_documented_shape(client, doc, q):
    r = client.get("/api/v1/geocode", query_string={"q": q})
    assert r.status_code == 200
    body = r.get_json()
    validator = _validator(doc, "GeocodeResults")
    assert validator.is_valid(body), list(validator.iter_errors(body))[:3]
    kinds = {place["type"] for place in body["results"]}
    expected = {"22765": {"postcode"}, "20095 Hamburg": {"postcode"},
                "eimsbuettel": {"bezirk", "stadtteil"}, "St. Pauli": {"stadtteil"},
                "alt": {"bezirk", "stadtteil"}}
    # Street addresses and organisation names are not resolved, as the document says.
    assert kinds == expected.get(q, set()), body
    for place in body["results"]:
        assert not validator.is_valid({**body, "results": [{**place, "kind": place["type"]}]})
        renamed = {("level" if k == "type" else k): v for k, v in place.items()}
        assert not validator.is_valid({**body, "results": [renamed]})


def test_the_document_says_what_geocode_and_q_search(doc):
    geocode = doc["paths"]["/api/v1/geocode"]["get"]
    q = _query_params(doc, "/api/v1/geocode")["q"]["description"]
    assert "Street addresses are not resolved" in geocode["description"]
    assert "Street addresses and organisation names are not resolved" in q
    assert "organisation" in _query_params(doc, "/api/v1/resources")["q"]["description"]
    updated = doc["components"]["schemas"]["ResourceProperties"]["properties"]["updated_at"]
    assert updated["format"] == "date-time" and updated["pattern"].endswith("Z$")
    assert re.fullmatch(updated["pattern"].strip("^$"), "2026-05-01T08:00:00Z")
    assert not re.fullmatch(updated["pattern"].strip("^$"), "2026-05-01T08:00:00.5+00:00")


# ---- the reference page --------------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        for key, value in attrs:
            if key in ("src", "href", "action", "srcset") and value:
                self.urls.append(value)


def test_docs_page_lists_everything_and_requests_nothing_elsewhere(doc_app, doc):
    client = doc_app.test_client()
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    html = r.get_data(as_text=True)
    for path, item in doc["paths"].items():
        assert f"<code>GET {path}</code>" in html and f'id="{item["get"]["operationId"]}"' in html
        for ref in item["get"].get("parameters", []):
            assert f"<code>{_param(doc, ref)['name']}</code>" in html
    for tag in doc["tags"]:
        assert tag["name"] in html
    assert "<code>support_group</code>" in html and "<code>wheelchair</code>" in html
    parser = _Links()
    parser.feed(html)
    assert parser.urls and parser.scripts == 0
    for url in parser.urls:
        assert not re.match(r"^([a-z]+:)?//", url, re.IGNORECASE), f"third-party request: {url}"
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url


# ---- schemathesis against a live server, on both backends ---------------------------------
# Every operation (/api/v1 and /ogc) against a live server with the demo data. Values that the
# parser refuses never reach the store, so the negative (invalid-input) boundary cases run on
# one backend (PostGIS); valid boundary cases and random (valid and invalid) requests run on
# both, except for the operations that never read the database (NO_DATABASE), which run
# once. The paths are absolute: the base URL is the server's root. Bounded:
# at most 30 generated requests per operation and backend, and small pages (LIVE_PAGES), so
# that no answer (a clamped OGC limit, the largest /api/v1 page) carries all 194 listings.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
FUZZ = settings(max_examples=30, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
LIVE_PAGES = {"PAGE_SIZE": 10, "MAX_PAGE_SIZE": 25}


def _live(request, backend: str, tmp_path_factory) -> Iterator[str]:
    engine = request.getfixturevalue(f"_{backend}_engine")
    ensure_demo(engine)
    app = create_app({"DATABASE_URL": engine.url.render_as_string(hide_password=False),
                      "INSTANCE_DIR": str(tmp_path_factory.mktemp("instance")),
                      "TILE_URL": "http://tiles.invalid/{z}/{x}/{y}.png", **LIVE_PAGES})
    with serve(app) as base:
        yield base
    app.extensions["mapservice"]["engine"].dispose()


@pytest.fixture(scope="module")
def live_postgis(request, tmp_path_factory) -> Iterator[str]:
    yield from _live(request, "postgis", tmp_path_factory)


@pytest.fixture(scope="module")
def live_spatialite(request, tmp_path_factory) -> Iterator[str]:
    yield from _live(request, "spatialite", tmp_path_factory)


def _document() -> dict[str, Any]:
    """The document of the live servers (the settings' defaults, the small LIVE_PAGES)."""
    values = {**load_settings(), **LIVE_PAGES}
    return build_document(default_taxonomy(), page_size=values["PAGE_SIZE"],
                          max_page_size=values["MAX_PAGE_SIZE"])


# Built at collection time (one test per operation); the test below proves it is the document
# the server serves.
schema_all = schemathesis.openapi.from_dict(_document())
# Answered from the taxonomy, the gazetteer or constants alone: the backend makes no difference.
NO_DATABASE = ("listCategories", "listDistricts", "geocode", "openapi", "docs",
               "ogcLandingPage", "ogcConformance", "ogcCollections")
schema_valid_edges = schemathesis.openapi.from_dict(
    _document(), config=schemathesis.Config.from_dict(
        {"phases": {"coverage": {"generation": {"mode": "positive"}}}}),
).exclude(operation_id=list(NO_DATABASE))


def test_the_spatialite_run_leaves_out_only_database_free_operations(doc):
    ids = {item["get"]["operationId"] for item in doc["paths"].values()}
    assert set(NO_DATABASE) < ids
    assert not any(path.startswith(("/api/v1/resources", "/ogc/collections/"))
                   for path, item in doc["paths"].items()
                   if item["get"]["operationId"] in NO_DATABASE)


@pytest.mark.parametrize("live", ["live_postgis", "live_spatialite"])
def test_served_document_is_the_tested_one(request, live):
    base = request.getfixturevalue(live)
    with urllib.request.urlopen(f"{base}/api/v1/openapi.json", timeout=10) as resp:
        assert json.loads(resp.read()) == _document()


@schema_all.parametrize()
@FUZZ
def test_api_conforms_to_its_document_postgis(case, live_postgis):
    case.call_and_validate(base_url=live_postgis, timeout=10, checks=CHECKS)


@schema_valid_edges.parametrize()
@FUZZ
def test_api_conforms_to_its_document_spatialite(case, live_spatialite):
    case.call_and_validate(base_url=live_spatialite, timeout=10, checks=CHECKS)


def _chosen_requests(feature_id: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(path, path parameters, query) that random generation seldom makes: an existing id
    (the demo's are new on every load), every kind of geocode result, OGC's clamped limit,
    its last page (``numberMatched``, ``prev``), filters that match."""
    resources, coll = {"collectionId": ogc.COLLECTION}, {"collectionId": ogc.COLLECTION,
                                                          "featureId": feature_id}
    items = [{"limit": "100000"}, {"limit": "10", "offset": "190"},
             {"bbox": "9.9,53.5,10.1,53.6", "bbox-crs": ogc.CRS84, "category": "counselling",
              "lang": "en", "f": "geojson"}, {"district": "Altona", "q": "Demo"}]
    return [
        ("/api/v1/resources/{id}", {"id": feature_id}, {}),
        (OGC_ITEM, coll, {}), (OGC_ITEM, coll, {"f": "geojson", "lang": "ar"}),
        *((OGC_ITEMS, resources, query) for query in items),
        ("/api/v1/resources", {}, {"f": "json", "limit": str(LIVE_PAGES["MAX_PAGE_SIZE"])}),
        ("/api/v1/resources", {}, {"near": VALID["near"], "limit": "5"}),
        ("/api/v1/resources", {}, {"f": "csv", "limit": "5"}),
        *(("/api/v1/geocode", {}, {"q": q}) for q in GEOCODE_QUERIES),
        ("/api/v1/districts", {}, {}),
        *(("/api/v1/categories", {}, {"lang": lang})
          for lang in default_taxonomy().ui_languages),
    ]


@pytest.mark.parametrize("live", ["live_postgis", "live_spatialite"])
def test_chosen_requests_conform_to_the_document(request, live):
    base = request.getfixturevalue(live)
    with urllib.request.urlopen(f"{base}/api/v1/resources?limit=1", timeout=10) as resp:
        feature_id = json.loads(resp.read())["features"][0]["id"]
    for path, path_parameters, query in _chosen_requests(feature_id):
        case = schema_all[path]["GET"].Case(path_parameters=path_parameters, query=query)
        response = case.call_and_validate(base_url=base, timeout=10, checks=CHECKS)
        assert response.status_code == 200, (path, query, response.text[:300])
