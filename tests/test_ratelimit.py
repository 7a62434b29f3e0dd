"""Rate limits (mapservice/ratelimit.py, Flask-Limiter) and the online geocoder's shared pace
(geocode.Pace): one client cannot use up the deployment's geocoder; worker processes keep one
pace together; a web request is not held for long; a limit breached is a 429 with Retry-After
in the visitor's language; the settings are checked. Against the Nominatim stand-in of
tests/test_geocode_online.py."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mapservice import create_app, geocode
from mapservice.settings import SettingError

from .conftest import ROOT, database_url
from .test_geocode_online import geocode as ask, make_client, nominatim, online_settings  # noqa: F401

CLIENT_A = {"REMOTE_ADDR": "198.51.100.7"}
CLIENT_B = {"REMOTE_ADDR": "203.0.113.9"}


@pytest.fixture
def pages(request) -> str:
    """A SpatiaLite database with the schema, for tests that show the map page."""
    return database_url(request, "spatialite")


# ---- a client's limit at the online geocoder -------------------------------------------------
def test_a_client_beyond_its_geocoder_limit_gets_429_others_do_not(make_client, nominatim):
    client = make_client(**online_settings(nominatim, GEOCODER_RATE_LIMIT="2/minute"))
    client.environ_base.update(CLIENT_A)
    ask(client, "Große Bergstraße 12")
    ask(client, "Große Bergstraße 14")
    r = ask(client, "Große Bergstraße 16", 429)
    assert len(nominatim.requests) == 2  # the third was not sent
    assert r.content_type == "application/problem+json"
    problem = r.get_json()
    assert problem["status"] == 429 and problem["title"] == "Too many requests"
    assert "2 per 1 minute" in problem["detail"] and "postcode" in problem["detail"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["Cache-Control"] == "no-store"
    documented = client.get("/api/v1/openapi.json").get_json()
    too_many = documented["paths"]["/api/v1/geocode"]["get"]["responses"]["429"]["$ref"]
    assert "Retry-After" in documented["components"]["responses"][
        too_many.rsplit("/", 1)[1]]["headers"]
    # What needs no request still answers: the gazetteer and the cache.
    assert ask(client, "22767").get_json()["results"][0]["type"] == "postcode"
    assert ask(client, "Große Bergstraße 12").get_json()["results"][0]["type"] == "address"
    assert len(nominatim.requests) == 2
    # Another client address has its own limit.
    other = client.application.test_client()
    other.environ_base.update(CLIENT_B)
    assert ask(other, "Große Bergstraße 16").get_json()["results"]
    assert len(nominatim.requests) == 3


def test_an_empty_geocoder_limit_means_none_per_client(make_client, nominatim):
    client = make_client(**online_settings(nominatim, GEOCODER_RATE_LIMIT=""))
    for number in range(25):
        ask(client, f"Große Bergstraße {number}")
    assert len(nominatim.requests) == 25


def test_the_map_says_at_the_field_that_addresses_cannot_be_looked_up(make_client, nominatim,
                                                                       pages):
    client = make_client(DATABASE_URL=pages,
                         **online_settings(nominatim, GEOCODER_RATE_LIMIT="1/minute"))
    r = client.get("/?where=Große+Bergstraße+12&category=youth_centre&lang=de")
    assert r.status_code == 303
    r = client.get("/?where=Große+Bergstraße+14&category=youth_centre&lang=de")
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    page = r.get_data(as_text=True)
    assert 'id="ms-where-error"' in page and "aria-invalid" in page
    assert "Adressen können gerade nicht gesucht werden" in page and "später" in page
    assert 'value="Große Bergstraße 14"' in page  # the form as it was
    assert 'value="youth_centre" selected' in page
    assert len(nominatim.requests) == 1


# ---- the pace, shared by processes -----------------------------------------------------------
def test_a_busy_geocoder_answers_503_with_retry_after_instead_of_waiting(make_client,
                                                                          nominatim, pages):
    client = make_client(DATABASE_URL=pages,
                         **online_settings(nominatim, GEOCODER_MIN_DELAY_S=1))
    # Other workers hold the next turns: the latest is 5 s away.
    pace = Path(client.application.config["INSTANCE_DIR"]) / geocode.PACE_FILE
    pace.parent.mkdir(parents=True, exist_ok=True)
    pace.write_text(repr(time.monotonic() + 4))
    started = time.monotonic()
    r = ask(client, "Große Bergstraße 12", 503)
    assert time.monotonic() - started < 0.5
    assert "busy" in r.get_json()["detail"]
    assert 4 <= int(r.headers["Retry-After"]) <= 6
    assert nominatim.requests == []
    # the map page says it at the field
    r = client.get("/?where=Große+Bergstraße+12&lang=en")
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert "Addresses cannot be looked up right now" in r.get_data(as_text=True)
    # a turn within WEB_WAIT_S is waited for
    pace.write_text(repr(time.monotonic() + 0.5))
    assert ask(client, "Große Bergstraße 12").get_json()["results"]
    assert nominatim.requests[0]["at"] - started >= 0.4


_PROCESS = textwrap.dedent("""
    import sys
    from mapservice import geocode
    url, pace_file, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
    service = geocode.OnlineGeocoder(
        url=url, user_agent="mapservice-tests", timeout_s=5,
        pace=geocode.Pace(geocode.Path(pace_file), 1.0),
        region_bbox=(8.40, 53.39, 10.33, 53.97), country="de")
    for number in range(first, first + 2):
        assert service.geocode(f"Große Bergstraße {number}")
""")


def test_worker_processes_keep_one_pace_together(nominatim, tmp_path):
    """Two processes (two workers, or a worker and an import) of one instance directory: four
    requests at least a second apart, not two pairs at once."""
    pace = tmp_path / "instance" / geocode.PACE_FILE
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS, nominatim.url, str(pace),
                               str(first)], cwd=ROOT) for first in (10, 20)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    times = sorted(r["at"] for r in nominatim.requests)
    assert len(times) == 4
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.95, gaps


def test_a_pace_file_of_garbage_or_far_future_is_no_queue(tmp_path):
    path = tmp_path / geocode.PACE_FILE
    for content in ("not a time", "nan", repr(time.monotonic() + 10 * 86400)):
        path.write_text(content)
        started = time.monotonic()
        geocode.Pace(path, 1.0).take(max_wait_s=0.5)
        assert time.monotonic() - started < 0.3, content


def test_busy_answers_do_not_use_up_the_clients_allowance(make_client, nominatim):
    client = make_client(**online_settings(nominatim, GEOCODER_MIN_DELAY_S=1,
                                           GEOCODER_RATE_LIMIT="2/minute"))
    pace = Path(client.application.config["INSTANCE_DIR"]) / geocode.PACE_FILE
    pace.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        pace.write_text(repr(time.monotonic() + 5))
        ask(client, "Große Bergstraße 12", 503)
    pace.write_text("")
    ask(client, "Große Bergstraße 12")  # was a 429: three busy answers had counted
    assert len(nominatim.requests) == 1


def test_an_ipv6_client_is_counted_by_its_64_network(make_client, nominatim):
    client = make_client(**online_settings(nominatim, GEOCODER_RATE_LIMIT="2/minute"))
    for number, host in enumerate(("2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:2::c")):
        other = client.application.test_client()
        other.environ_base.update({"REMOTE_ADDR": host})
        ask(other, f"Große Bergstraße {number}", 200 if number < 2 else 429)
    other.environ_base.update({"REMOTE_ADDR": "2001:db8:1:3::a"})  # another network
    ask(other, "Große Bergstraße 9")


def test_a_pace_file_that_cannot_be_written_keeps_a_pace_per_process(make_client, nominatim,
                                                                     tmp_path, caplog):
    client = make_client(**online_settings(nominatim, GEOCODER_MIN_DELAY_S=1))
    pace = Path(client.application.config["INSTANCE_DIR"]) / geocode.PACE_FILE
    pace.mkdir(parents=True)  # a directory where the file should be: open() fails
    ask(client, "Große Bergstraße 12")
    ask(client, "Große Bergstraße 14")
    first, second = nominatim.requests
    assert second["at"] - first["at"] >= 0.95
    assert "pace file" in caplog.text and "cannot be used" in caplog.text


# ---- a general limit (off by default) --------------------------------------------------------
def test_no_general_limit_by_default(make_client):
    client = make_client()
    assert client.application.config["RATE_LIMIT"] == ""
    for _ in range(50):
        assert client.get("/api/v1/categories").status_code == 200


def test_a_general_limit_counts_pages_and_api_but_not_static_files(make_client, pages):
    client = make_client(DATABASE_URL=pages, RATE_LIMIT="3/minute")
    client.environ_base.update(CLIENT_A)
    for _ in range(5):
        assert client.get("/static/css/app.css").status_code == 200
    assert client.get("/api/v1/categories").status_code == 200
    assert client.get("/api/v1/districts").status_code == 200
    assert client.get("/?lang=tr").status_code == 200
    r = client.get("/api/v1/categories")
    assert r.status_code == 429 and r.content_type == "application/problem+json"
    assert "3 per 1 minute" in r.get_json()["detail"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    r = client.get("/?lang=tr")
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.content_type.startswith("text/html")
    assert "Çok fazla istek" in r.get_data(as_text=True)
    other = client.application.test_client()
    other.environ_base.update(CLIENT_B)
    assert other.get("/api/v1/categories").status_code == 200
    # CORS: a preflight is not counted, and another origin may read Retry-After
    preflight = client.options("/api/v1/categories", headers={
        "Origin": "https://example.net", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code in (200, 204)
    r = client.get("/api/v1/categories", headers={"Origin": "https://example.net"})
    assert r.status_code == 429
    assert "Retry-After" in r.headers.get("Access-Control-Expose-Headers", "")


def test_behind_a_trusted_proxy_the_client_is_the_forwarded_address(make_client):
    client = make_client(RATE_LIMIT="2/minute", PROXY_COUNT=1)
    for client_ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        for _ in range(2):
            r = client.get("/api/v1/categories", headers={"X-Forwarded-For": client_ip})
            assert r.status_code == 200
    r = client.get("/api/v1/categories", headers={"X-Forwarded-For": "192.0.2.1"})
    assert r.status_code == 429


# ---- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize("config, message", [
    ({"RATE_LIMIT": "lots"}, "MAPSERVICE_RATE_LIMIT: expected rate limits"),
    ({"RATE_LIMIT": "0/minute"}, "MAPSERVICE_RATE_LIMIT: expected rate limits"),
    ({"GEOCODER_RATE_LIMIT": "20/fortnight"}, "MAPSERVICE_GEOCODER_RATE_LIMIT: expected"),
    ({"RATE_LIMIT_STORAGE": "carrier-pigeon://loft"}, "MAPSERVICE_RATE_LIMIT_STORAGE: "),
    ({"RATE_LIMIT_STORAGE": "memory"}, "MAPSERVICE_RATE_LIMIT_STORAGE: expected a storage URI"),
    ({"GEOCODER": "nominatim", "GEOCODER_URL": "http://127.0.0.1:9",
      "GEOCODER_MIN_DELAY_S": float("inf")}, "MAPSERVICE_GEOCODER_MIN_DELAY_S: must be from"),
])
def test_wrong_limits_are_refused_when_the_app_is_built(tmp_path, config, message):
    with pytest.raises(SettingError, match=message):
        create_app({"DATABASE_URL": "sqlite://", "INSTANCE_DIR": str(tmp_path), **config})


def test_the_environment_variable_is_checked_too(monkeypatch):
    from mapservice import settings

    with pytest.raises(SettingError, match="MAPSERVICE_RATE_LIMIT: expected rate limits"):
        settings.load({"MAPSERVICE_RATE_LIMIT": "many/minute"})
    assert settings.load({"MAPSERVICE_RATE_LIMIT": " 600/minute;10/second "})[
        "RATE_LIMIT"] == "600/minute;10/second"
