"""`mapservice serve` runs granian with several worker processes that share nothing but the
database; connections are kept alive; behind a trusted proxy the links carry its public URL."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import http.client
import json
import urllib.request

import pytest

from .conftest import database_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("backend", ["spatialite", "postgis"], indirect=True)
def test_serve_runs_granian_workers(request, backend, engine, tmp_path):
    from mapservice.demo import load_demo
    from mapservice.store import make_store

    load_demo(make_store(engine))
    port = _free_port()
    env = {**os.environ, "MAPSERVICE_DATABASE_URL": database_url(request, backend),
           "MAPSERVICE_INSTANCE_DIR": str(tmp_path), "MAPSERVICE_PROXY_COUNT": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mapservice", "serve", "--port", str(port),
                             "--workers", "2"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/resources?limit=3",
                                            timeout=5) as r:
                    body, server = r.read(), r.headers.get("Server", "")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.3)
        assert b'"FeatureCollection"' in body
        assert "granian" in server.lower()
        # one connection for several requests (HTTP/1.1 keep-alive), each answered in full
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(3):
            conn.request("GET", "/api/v1/resources?limit=1")
            response = conn.getresponse()
            assert response.status == 200 and b"FeatureCollection" in response.read()
            assert not response.will_close
        # MAPSERVICE_PROXY_COUNT=1: the proxy's view of scheme and host makes the links
        conn.request("GET", "/api/v1/resources?limit=1", headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "map.example.org"})
        page = json.loads(conn.getresponse().read())
        assert {link["href"].split("/api/")[0] for link in page["links"]} == {
            "https://map.example.org"}
        conn.close()
        for _ in range(20):  # whichever worker answers, the answer is the same
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/sources") as r:
                assert b'"demo"' in r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
            assert r.status == 200
        assert (tmp_path / "secret_key").exists()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert out.count("Started worker") >= 2, out[-2000:]
    # no access log unless MAPSERVICE_ACCESS_LOG asks for one: who searched for what is
    # nobody's record
    assert "/api/v1/resources" not in out, out[-2000:]


def test_an_untrusted_proxy_header_is_ignored_and_reported_once(tmp_path, caplog):
    """Without MAPSERVICE_PROXY_COUNT the X-Forwarded-* headers change no link (a client could
    send them), and the operator is told once that the proxy's headers are not trusted."""
    from mapservice import create_app

    from mapservice import migrate

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                      "INSTANCE_DIR": str(tmp_path), "TESTING": True})
    migrate.upgrade(app.extensions["mapservice"]["engine"])
    client = app.test_client()
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
              "X-Forwarded-Port": "6666", "X-Forwarded-Prefix": "/evil"}
    with caplog.at_level("WARNING"):
        for _ in range(3):
            r = client.get("/ogc/collections", headers=forged)
            assert r.status_code == 200
            assert "evil" not in r.get_data(as_text=True)
            assert "https://" not in r.get_data(as_text=True)
    warnings = [rec.message for rec in caplog.records if "PROXY_COUNT" in rec.message]
    assert len(warnings) == 1 and "MAPSERVICE_PROXY_COUNT=1" in warnings[0]
    # trusted (one proxy): scheme and host follow it, port and prefix never do
    trusted = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                          "INSTANCE_DIR": str(tmp_path), "TESTING": True, "PROXY_COUNT": 1})
    body = trusted.test_client().get("/ogc/collections", headers={
        **forged, "X-Forwarded-Host": "map.example.org"}).get_data(as_text=True)
    assert "https://map.example.org/ogc/collections" in body
    assert "6666" not in body and "/evil" not in body
