"""The online geocoder (Nominatim via geopy), against a real local HTTP server that answers
Nominatim's ``/search`` and records every request: off by default (nothing is sent), the region
restriction and User-Agent of what is sent, the gazetteer first, failures as 503 problem+json,
the pace and the cache, the settings' checks, and CSV rows placed by it on both backends."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import jsonschema_rs
import pytest

from mapservice import __version__, create_app
from mapservice.settings import PUBLIC_NOMINATIM, SettingError

from .conftest import ROOT

REGION_BBOX = "8.40,53.39,10.33,53.97"  # the setting's default: Hamburg
LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright"
BERGSTRASSE = {"place_id": 1, "licence": LICENCE, "osm_type": "node", "osm_id": 11,
               "lat": "53.5503", "lon": "9.9347", "class": "place", "type": "house",
               "display_name": "12, Große Bergstraße, Altona-Altstadt, Altona, Hamburg, 22767, "
                               "Deutschland",
               "boundingbox": ["53.5502", "53.5504", "9.9346", "9.9348"]}
BERLIN = {"place_id": 2, "licence": LICENCE, "lat": "52.5163", "lon": "13.3777",
          "display_name": "Jungfernstieg, Berlin, Deutschland"}
JUNGFERNSTIEG = {"place_id": 3, "licence": LICENCE, "lat": "53.5530", "lon": "9.9925",
                 "display_name": "Jungfernstieg, Neustadt, Hamburg-Mitte, Hamburg, Deutschland"}
AGENT = "mapservice-tests (+https://karte.hamburg-hilft.test; it@hamburg-hilft.test)"


# ---- a Nominatim stand-in --------------------------------------------------------------------
@dataclass
class Nominatim:
    """A local server on 127.0.0.1 that answers ``/search`` like Nominatim (``mode`` "ok"), with
    an HTTP 500 ("error") or only after ``delay_s`` ("slow"), and records each request."""

    url: str = ""
    mode: str = "ok"
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, query: str) -> list[dict[str, Any]]:
        if "bergstraße" in query.lower() or "bergstrasse" in query.lower():
            return [BERGSTRASSE]
        if "jungfernstieg" in query.lower():  # a server that ignores bounded=1
            return [BERLIN, JUNGFERNSTIEG]
        return []


@pytest.fixture
def nominatim() -> Iterator[Nominatim]:
    fake = Nominatim()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            fake.requests.append({"path": parts.path, "params": params, "at": time.monotonic(),
                                  "user_agent": self.headers.get("User-Agent")})
            if fake.mode == "slow":
                time.sleep(fake.delay_s)
            if fake.mode == "error":
                body, status = b'{"error": "internal"}', 500
            else:
                body, status = json.dumps(fake.answer(params.get("q", ""))).encode(), 200
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def online_settings(fake: Nominatim, **extra: Any) -> dict[str, Any]:
    return {"GEOCODER": "nominatim", "GEOCODER_URL": fake.url, "GEOCODER_USER_AGENT": AGENT,
            "GEOCODER_MIN_DELAY_S": 0, "GEOCODER_TIMEOUT_S": 2, **extra}


@pytest.fixture
def make_client(tmp_path):
    """A client of an app with the given settings. /api/v1/geocode reads no database: an
    in-memory SpatiaLite serves."""
    apps = []

    def make(**config: Any):
        app = create_app({"DATABASE_URL": "sqlite://", "TESTING": True,
                          "INSTANCE_DIR": str(tmp_path / "instance"),
                          "TILE_URL": "http://tiles.invalid/{z}/{x}/{y}.png", **config})
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["mapservice"]["engine"].dispose()


def geocode(client, q: str, status: int = 200) -> Any:
    r = client.get("/api/v1/geocode", query_string={"q": q})
    assert r.status_code == status, r.get_data(as_text=True)
    return r


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema as tests/test_openapi.py does it (nullable -> null type)."""
    if isinstance(node, dict):
        out = {k: _json_schema(v) for k, v in node.items()
               if k not in ("nullable", "discriminator", "example")}
        return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") else out
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    return node


# ---- the API ---------------------------------------------------------------------------------
def test_off_by_default_nothing_is_sent(make_client, nominatim):
    # The server's URL is even configured: without GEOCODER nothing goes there.
    client = make_client(GEOCODER_URL=nominatim.url)
    assert client.application.config["GEOCODER"] == ""
    assert geocode(client, "Große Bergstraße 12").get_json() == {
        "query": "Große Bergstraße 12", "results": []}
    assert geocode(client, "22767").get_json()["results"][0]["type"] == "postcode"
    assert nominatim.requests == []


def test_enabled_an_address_comes_from_the_geocoder_restricted_to_the_region(make_client,
                                                                              nominatim):
    client = make_client(**online_settings(nominatim))
    body = geocode(client, "Große  Bergstraße 12").get_json()
    assert body == {"query": "Große Bergstraße 12", "results": [
        {"type": "address", "name": BERGSTRASSE["display_name"], "lat": 53.5503, "lon": 9.9347,
         "attribution": LICENCE}]}
    [sent] = nominatim.requests
    assert sent["path"] == "/search"
    assert sent["user_agent"] == AGENT
    params = sent["params"]
    assert params["q"] == "Große Bergstraße 12" and params["format"] == "json"
    assert [float(v) for v in params["viewbox"].split(",")] == [
        float(v) for v in REGION_BBOX.split(",")]
    assert params["bounded"] == "1" and params["countrycodes"] == "de"
    assert params["limit"] == "5"
    # The documented shape, "address" included.
    doc = client.get("/api/v1/openapi.json").get_json()
    validator = jsonschema_rs.Draft4Validator({
        "$ref": "#/components/schemas/GeocodeResults",
        "components": {"schemas": _json_schema(doc["components"]["schemas"])}})
    assert validator.is_valid(body), list(validator.iter_errors(body))[:3]
    operation = doc["paths"]["/api/v1/geocode"]["get"]
    unavailable = operation["responses"]["503"]
    if "$ref" in unavailable:  # a shared response component
        unavailable = doc["components"]["responses"][unavailable["$ref"].rsplit("/", 1)[1]]
    assert "online geocoder" in unavailable["description"]
    # Per-process cache: the same question again sends nothing.
    assert geocode(client, "Große Bergstraße 12").get_json() == body
    assert len(nominatim.requests) == 1


def test_the_gazetteer_answers_first_without_a_request(make_client, nominatim):
    client = make_client(**online_settings(nominatim))
    for q, kind in (("22767", "postcode"), ("20095 Hamburg", "postcode"),
                    ("Ottensen", "stadtteil"), ("St. Pauli", "stadtteil")):
        results = geocode(client, q).get_json()["results"]
        assert results and results[0]["type"] == kind, (q, results)
    assert geocode(client, "zz").get_json()["results"] == []  # too short to ask about
    assert nominatim.requests == []
    # Unknown to the server too: an empty list, after one request.
    assert geocode(client, "Nirgendwostraße 1").get_json()["results"] == []
    assert len(nominatim.requests) == 1


def test_points_outside_the_region_are_dropped(make_client, nominatim):
    client = make_client(**online_settings(nominatim))
    results = geocode(client, "Jungfernstieg").get_json()["results"]
    assert [r["name"] for r in results] == [JUNGFERNSTIEG["display_name"]]


@pytest.mark.parametrize("mode, cause", [
    ("error", "answered with an error"), ("slow", "did not answer within 0.5 s"),
    ("down", "could not be reached")])
def test_a_failing_geocoder_is_a_503_naming_the_cause(make_client, nominatim, mode, cause):
    url = nominatim.url
    if mode == "down":
        import socket

        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    nominatim.mode, nominatim.delay_s = mode, 1.5
    client = make_client(**online_settings(nominatim, GEOCODER_URL=url, GEOCODER_TIMEOUT_S=0.5))
    started = time.monotonic()
    r = geocode(client, "Große Bergstraße 12", 503)
    assert time.monotonic() - started < 1.4  # no retries, no waiting out the slow server
    assert r.content_type == "application/problem+json"
    problem = r.get_json()
    assert problem["status"] == 503 and problem["title"] == "Geocoder unavailable"
    assert cause in problem["detail"], problem
    assert r.headers["Cache-Control"] == "no-store"
    if mode == "error":
        assert "500" in problem["detail"]
    # A failure is not cached: the next request asks again.
    geocode(client, "Große Bergstraße 12", 503)
    assert len(nominatim.requests) == (0 if mode == "down" else 2)


def test_requests_are_paced(make_client, nominatim):
    client = make_client(**online_settings(nominatim, GEOCODER_MIN_DELAY_S=1))
    geocode(client, "Große Bergstraße 12")
    geocode(client, "Große Bergstraße 14")
    first, second = nominatim.requests
    assert second["at"] - first["at"] >= 0.95


def test_a_self_hosted_server_gets_the_default_user_agent(make_client, nominatim):
    client = make_client(**online_settings(nominatim, GEOCODER_USER_AGENT=""))
    geocode(client, "Große Bergstraße 12")
    assert nominatim.requests[0]["user_agent"] == f"mapservice/{__version__}"


@pytest.mark.parametrize("config, message", [
    ({"GEOCODER": "google"}, "MAPSERVICE_GEOCODER: unknown geocoder 'google'"),
    ({"GEOCODER": "nominatim"}, "MAPSERVICE_GEOCODER_USER_AGENT: the public Nominatim"),
    ({"GEOCODER": "nominatim", "GEOCODER_USER_AGENT": "mapservice"}, "got 'mapservice'"),
    ({"GEOCODER": "nominatim", "GEOCODER_USER_AGENT": "mapservice (+https://map.example.org)"},
     "in place of example.org"),
    ({"GEOCODER": "nominatim", "GEOCODER_USER_AGENT": AGENT, "GEOCODER_MIN_DELAY_S": 0.5},
     "at most 1 request/s"),
    ({"GEOCODER": "nominatim", "GEOCODER_URL": "nominatim.local"}, "GEOCODER_URL"),
    ({"GEOCODER": "nominatim", "GEOCODER_URL": "http://nominatim.local",
      "GEOCODER_TIMEOUT_S": 0}, "GEOCODER_TIMEOUT_S"),
])
def test_settings_are_checked_when_the_app_is_built(make_client, config, message):
    with pytest.raises(SettingError, match=message.replace("(", r"\(").replace(".", r"\.")):
        make_client(**config)


def test_the_public_server_with_a_contact_is_accepted_without_a_request(make_client):
    client = make_client(GEOCODER="nominatim", GEOCODER_USER_AGENT=AGENT)
    assert client.application.config["GEOCODER_URL"] == PUBLIC_NOMINATIM
    assert geocode(client, "22767").get_json()["results"][0]["type"] == "postcode"


def test_the_cli_refuses_an_unknown_geocoder(tmp_path):
    env = {**os.environ, "MAPSERVICE_GEOCODER": "bing",
           "MAPSERVICE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
           "MAPSERVICE_INSTANCE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "mapservice.cli", "duplicates"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "MAPSERVICE_GEOCODER: unknown geocoder 'bing'; allowed: nominatim" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr


# ---- CSV import (both backends) --------------------------------------------------------------
CSV = ("id,name,street,zip_code,lat,lon,category,confidential\n"
       "1,Nachbarschaftstreff Große Bergstraße,Große Bergstraße 12,,,,community centre,\n"
       "2,Stadtteilbüro Altona,Max-Brauer-Allee 1,22767,,,community centre,\n"
       "3,Treff am Rathaus,Rathausmarkt 1,,53.5503,9.9927,community centre,\n")
CONFIDENTIAL = "5,Frauenhaus,Geheimweg 1,,,,women,ja\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "treffs.csv"
    path.write_text(text, encoding="utf-8")
    return path


def published(app) -> dict[str, tuple[float, float]]:
    items = app.test_client().get("/api/v1/resources?f=json").get_json()["items"]
    return {item["name"]: (item["lat"], item["lon"]) for item in items}


def test_import_without_the_geocoder_reports_the_unplaced_row(app, tmp_path, nominatim):
    app.config.update(GEOCODER_URL=nominatim.url)  # configured, but GEOCODER is off
    done = app.test_cli_runner().invoke(args=["import", str(write(tmp_path, CSV))])
    assert done.exit_code == 2, done.output
    assert "row 1, field 'lat/lon': no coordinates" in done.output
    assert "row 2" not in done.output and "row 3" not in done.output
    assert nominatim.requests == []
    assert published(app) == {}


def test_import_places_a_street_address_by_the_online_geocoder(app, tmp_path, nominatim):
    app.config.update(online_settings(nominatim))
    done = app.test_cli_runner().invoke(args=["import", str(write(tmp_path, CSV))])
    assert done.exit_code == 0, done.output
    assert "created 3" in done.output and "invalid 0" in done.output
    assert "placed by the online geocoder" in done.output
    # Only the row the gazetteer could not place was sent, with the service's city.
    [sent] = nominatim.requests
    assert sent["params"]["q"] == "Große Bergstraße 12, Hamburg"
    assert sent["params"]["bounded"] == "1" and sent["params"]["countrycodes"] == "de"
    assert sent["params"]["viewbox"] and sent["user_agent"] == AGENT
    points = published(app)
    assert points["Nachbarschaftstreff Große Bergstraße"] == pytest.approx((53.5503, 9.9347))
    assert points["Stadtteilbüro Altona"] == pytest.approx((53.550156, 9.946950))  # 22767
    assert points["Treff am Rathaus"] == pytest.approx((53.5503, 9.9927))


def test_import_reports_what_the_online_geocoder_could_not_place(app, tmp_path, nominatim):
    app.config.update(online_settings(nominatim))
    unknown = CSV + "4,Treff Nirgendwo,Nirgendwostraße 1,,,,community centre,\n" + CONFIDENTIAL
    done = app.test_cli_runner().invoke(args=["import", str(write(tmp_path, unknown))])
    assert done.exit_code == 2, done.output
    assert ("row 4, field 'address': no coordinates, and neither the gazetteer nor the online "
            "geocoder found 'Nirgendwostraße 1, Hamburg'") in done.output
    # A confidential location's address never leaves the server.
    assert "row 5, field 'lat/lon': no coordinates, and a confidential location" in done.output
    assert [r["params"]["q"] for r in nominatim.requests] == [
        "Große Bergstraße 12, Hamburg", "Nirgendwostraße 1, Hamburg"]
    assert published(app) == {}


def test_import_reports_a_failing_geocoder_on_the_row(app, tmp_path, nominatim):
    nominatim.mode = "error"
    app.config.update(online_settings(nominatim))
    done = app.test_cli_runner().invoke(args=["import", str(write(tmp_path, CSV)),
                                              "--skip-invalid"])
    assert done.exit_code == 0, done.output
    assert ("row 1, field 'address': no coordinates, and the address could not be geocoded: "
            "the online geocoder answered with an error") in done.output
    assert "created 2" in done.output and "invalid 1" in done.output
    assert set(published(app)) == {"Stadtteilbüro Altona", "Treff am Rathaus"}


def test_a_file_with_only_an_address_column_needs_the_online_geocoder(app, tmp_path,
                                                                      nominatim):
    only_address = ("name,street\n"
                    "Nachbarschaftstreff Große Bergstraße,Große Bergstraße 12\n")
    path = write(tmp_path, only_address)
    app.config.update(GEOCODER_URL=nominatim.url)  # off
    refused = app.test_cli_runner().invoke(args=["import", str(path)])
    assert refused.exit_code == 2 and "no coordinate columns" in refused.output
    assert "online geocoder" not in refused.output and nominatim.requests == []
    app.config.update(online_settings(nominatim))
    done = app.test_cli_runner().invoke(args=["import", str(path)])
    assert done.exit_code == 0 and "created 1" in done.output, done.output
    assert published(app) == {"Nachbarschaftstreff Große Bergstraße": pytest.approx(
        (53.5503, 9.9347))}


def test_a_reimport_keeps_the_points_and_asks_nothing_again(app, tmp_path, nominatim):
    """Importing the same file again (a new process: no in-memory cache) sends no address:
    the stored record with the same address keeps its point, and nothing changes; a changed
    address is asked for again."""
    from mapservice import geocode

    app.config.update(online_settings(nominatim))
    path = write(tmp_path, CSV)
    assert app.test_cli_runner().invoke(args=["import", str(path)]).exit_code == 0
    assert len(nominatim.requests) == 1
    geocode._online.cache_clear()  # as in a new `mapservice import` process
    done = app.test_cli_runner().invoke(args=["import", str(path)])
    assert done.exit_code == 0, done.output
    assert "created 0, updated 0, unchanged 3" in done.output
    assert "kept the point of its earlier import" in done.output
    assert len(nominatim.requests) == 1
    geocode._online.cache_clear()
    moved = CSV.replace("Große Bergstraße 12", "Große Bergstraße 14")
    done = app.test_cli_runner().invoke(args=["import", str(write(tmp_path, moved))])
    assert done.exit_code == 0, done.output
    assert "updated 1" in done.output
    assert [r["params"]["q"] for r in nominatim.requests][1:] == ["Große Bergstraße 14, Hamburg"]


def test_a_moderators_address_keeps_its_point_and_is_not_sent(app, tmp_path, nominatim):
    """A moderator corrected a record's address (and so its point): a re-import of the old
    file keeps both (the address is a conflict), and the file's address is not sent again."""
    from sqlalchemy import select

    from mapservice import geocode
    from mapservice.models import Resource

    app.config.update(online_settings(nominatim))
    path = write(tmp_path, CSV)
    assert app.test_cli_runner().invoke(args=["import", str(path)]).exit_code == 0
    store = app.extensions["mapservice"]["store"]
    with store.session() as session, session.begin():
        res = session.scalar(select(Resource).where(Resource.source_id == "1"))
        res.address, res.locked_fields = "Große Bergstraße 16", ["address"]
    geocode._online.cache_clear()
    done = app.test_cli_runner().invoke(args=["import", str(path)])
    assert done.exit_code == 0, done.output
    assert "a moderator set its address" in done.output and "conflicts 1" in done.output
    assert len(nominatim.requests) == 1
    assert published(app)["Nachbarschaftstreff Große Bergstraße"] == pytest.approx(
        (53.5503, 9.9347))


def test_threads_asking_at_once_share_one_geocoder_and_its_pace(nominatim, monkeypatch):
    """A worker runs several threads: the first requests that need the online geocoder, at
    the same moment, must get the same instance (one rate limiter), not one each."""
    import threading

    from mapservice import geocode, settings

    class Slow(geocode.OnlineGeocoder):
        def __init__(self, **kwargs: Any) -> None:
            time.sleep(0.1)  # a slow set-up, so the threads overlap
            super().__init__(**kwargs)

    monkeypatch.setattr(geocode, "OnlineGeocoder", Slow)
    geocode._online.cache_clear()
    config = {**settings.load({}), **online_settings(nominatim)}
    found: list[Any] = []
    threads = [threading.Thread(target=lambda: found.append(geocode.online(config)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    geocode._online.cache_clear()
    assert len(found) == 8 and len({id(g) for g in found}) == 1
