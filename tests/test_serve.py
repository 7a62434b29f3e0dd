"""`mapservice serve` runs gunicorn with several workers that share nothing but the database."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import database_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("backend", ["spatialite", "postgis"], indirect=True)
def test_serve_runs_gunicorn_workers(request, backend, engine, tmp_path):
    from mapservice.demo import load_demo
    from mapservice.store import make_store

    load_demo(make_store(engine))
    port = _free_port()
    env = {**os.environ, "MAPSERVICE_DATABASE_URL": database_url(request, backend),
           "MAPSERVICE_INSTANCE_DIR": str(tmp_path)}
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
        assert "gunicorn" in server.lower()
        for _ in range(20):  # whichever worker answers, the answer is the same
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/sources") as r:
                assert b'"demo"' in r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
            assert r.status == 200
        assert (tmp_path / "secret_key").exists()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "Booting worker" in out and out.count("Booting worker") >= 2, out[-2000:]
