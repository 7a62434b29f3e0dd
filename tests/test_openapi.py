"""The OpenAPI document: valid, complete, in step with the code (parameters, enums, bounds,
routes), its reference page self-hosted, and the live API conforming to it (schemathesis, on
both backends)."""
from __future__ import annotations

import json
import re
import urllib.request
from html.parser import HTMLParser
from typing import Any, Iterator

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

from mapservice import create_app
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
    "offset": "0", "f": "json", "lang": "en",
}
VALID_FOR = {"/geocode": {"q": "22765"}}
NEEDS = {"radius": {"near": VALID["near"]}}  # parameters that only make sense with another


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
    q = _query_params(doc, "/resources")
    assert q["category"]["schema"]["items"]["enum"] == list(taxonomy.categories)
    assert q["audience"]["schema"]["items"]["enum"] == list(taxonomy.audiences)
    assert q["language"]["schema"]["items"]["enum"] == list(taxonomy.languages)
    assert q["cost"]["schema"]["items"]["enum"] == list(COSTS)
    assert q["wheelchair"]["schema"]["items"]["enum"] == list(WHEELCHAIR)
    assert q["sort"]["schema"]["enum"] == list(SORTS)
    assert q["f"]["schema"]["enum"] == list(FORMATS)
    assert _query_params(doc, "/categories")["lang"]["schema"]["enum"] == list(
        taxonomy.ui_languages)
    assert q["radius"]["schema"]["maximum"] == MAX_RADIUS_M


def test_page_sizes_follow_the_settings(tmp_path):
    app = create_app({"DATABASE_URL": "sqlite://", "INSTANCE_DIR": str(tmp_path / "i"),
                      "PAGE_SIZE": 7, "MAX_PAGE_SIZE": 70})
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    limit = _query_params(doc, "/resources")["limit"]["schema"]
    assert (limit["default"], limit["maximum"]) == (7, 70)
    app.extensions["mapservice"]["engine"].dispose()


def test_every_api_route_is_documented_and_vice_versa(doc_app, doc):
    def shape(path: str) -> str:
        return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)

    routes = {shape(rule.rule.removeprefix("/api/v1")) for rule in doc_app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and "GET" in (rule.methods or ())}
    documented = {shape(path) for path in doc["paths"]}
    assert routes == documented


# ---- the parameters the code accepts = the parameters documented ---------------------------
def test_resource_parameters_match_what_the_code_accepts(client, doc):
    documented = set(_query_params(doc, "/resources"))
    assert documented == set(RESOURCE_QUERY)
    # the code names every parameter it knows when it refuses an unknown one
    r = client.get("/api/v1/resources?no_such_parameter=1")
    assert r.status_code == 400 and r.get_json()["parameter"] == "no_such_parameter"
    known = {name.strip() for name in r.get_json()["detail"].split("known:", 1)[1].split(",")}
    assert known == documented


@pytest.mark.parametrize("path", ["/resources", "/categories", "/districts", "/geocode"])
def test_every_documented_parameter_is_accepted(client, doc, path):
    values = {**VALID, **VALID_FOR.get(path, {})}
    params = _query_params(doc, path)
    required = {name: values[name] for name, p in params.items() if p.get("required")}
    for name in [*params, None]:
        args = {**required, **NEEDS.get(name or "", {}), **({name: values[name]} if name else {})}
        r = client.get(f"/api/v1{path}", query_string=args)
        assert r.status_code == 200, (path, args, r.status_code, r.data[:300])


@pytest.mark.parametrize("name, bound", [("limit", "minimum"), ("limit", "maximum"),
                                         ("offset", "minimum"), ("offset", "maximum"),
                                         ("radius", "maximum")])
def test_documented_bounds_are_the_code_bounds(client, doc, name, bound):
    edge = _query_params(doc, "/resources")[name]["schema"][bound]
    outside = edge - 1 if bound == "minimum" else edge + 1
    extra = {"near": "53.55,10"} if name == "radius" else {}
    ok = client.get("/api/v1/resources", query_string={**extra, name: _num(edge)})
    assert ok.status_code == 200, ok.data
    bad = client.get("/api/v1/resources", query_string={**extra, name: _num(outside)})
    assert bad.status_code == 400 and bad.get_json()["parameter"] == name


def test_documented_text_length_is_the_code_limit(client, doc):
    longest = _query_params(doc, "/resources")["q"]["schema"]["maxLength"]
    assert client.get("/api/v1/resources", query_string={"q": "a" * longest}).status_code == 200
    r = client.get("/api/v1/resources", query_string={"q": "a" * (longest + 1)})
    assert r.status_code == 400 and r.get_json()["parameter"] == "q"


def test_radius_must_be_positive(client, doc):
    schema = _query_params(doc, "/resources")["radius"]["schema"]
    assert schema["minimum"] == 0 and schema["exclusiveMinimum"] is True
    r = client.get("/api/v1/resources?near=53.55,10&radius=0")
    assert r.status_code == 400 and r.get_json()["parameter"] == "radius"


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
        assert f"/api/v1{path}" in html
        for ref in item["get"].get("parameters", []):
            assert f"<code>{_param(doc, ref)['name']}</code>" in html
    assert "<code>support_group</code>" in html and "<code>wheelchair</code>" in html
    parser = _Links()
    parser.feed(html)
    assert parser.urls and parser.scripts == 0
    for url in parser.urls:
        assert not re.match(r"^([a-z]+:)?//", url, re.I), f"third-party request: {url}"
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url


# ---- schemathesis against a live server, on both backends ---------------------------------
# Every operation, on both backends, against a live server with the demo data. Values that the
# parser refuses never reach the store, so the negative (invalid-input) boundary cases run on one
# backend; valid boundary cases and random (valid and invalid) requests run on both.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
FUZZ = settings(max_examples=30, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _live(request, backend: str, tmp_path_factory) -> Iterator[str]:
    engine = request.getfixturevalue(f"_{backend}_engine")
    ensure_demo(engine)
    app = create_app({"DATABASE_URL": engine.url.render_as_string(hide_password=False),
                      "INSTANCE_DIR": str(tmp_path_factory.mktemp("instance")),
                      "TILE_URL": "http://tiles.invalid/{z}/{x}/{y}.png"})
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
    values = load_settings()
    return build_document(default_taxonomy(), page_size=values["PAGE_SIZE"],
                          max_page_size=values["MAX_PAGE_SIZE"])


# Built at collection time (one test per operation); the test below proves it is the document
# the server serves.
schema_all = schemathesis.openapi.from_dict(_document())
schema_valid_edges = schemathesis.openapi.from_dict(
    _document(), config=schemathesis.Config.from_dict(
        {"phases": {"coverage": {"generation": {"mode": "positive"}}}}))


@pytest.mark.parametrize("live", ["live_postgis", "live_spatialite"])
def test_served_document_is_the_tested_one(request, live):
    base = request.getfixturevalue(live)
    with urllib.request.urlopen(f"{base}/api/v1/openapi.json", timeout=10) as resp:
        assert json.loads(resp.read()) == _document()


@schema_all.parametrize()
@FUZZ
def test_api_conforms_to_its_document_postgis(case, live_postgis):
    case.call_and_validate(base_url=f"{live_postgis}/api/v1", timeout=10, checks=CHECKS)


@schema_valid_edges.parametrize()
@FUZZ
def test_api_conforms_to_its_document_spatialite(case, live_spatialite):
    case.call_and_validate(base_url=f"{live_spatialite}/api/v1", timeout=10, checks=CHECKS)
