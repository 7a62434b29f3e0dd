"""Map page benchmark: the budgets of the map page in headless Chromium and over HTTP.

For each size (default 10k and 100k synthetic resources from :mod:`bench.generate`), on a
fresh SpatiaLite file (or ``--backend postgis``: a database of its own on
``MAPSERVICE_BENCH_POSTGIS_URL``) loaded with ``Store.bulk_upsert``, served by
``mapservice serve --workers 2``:

1. **HTML shell**: the bytes of the map page's HTML (``/?lang=de``), as sent and unencoded;
2. **first markers**: Debian's Chromium (Playwright, a new browser context each round, so
   nothing is cached) opens the page at its default view (the whole city) and records the
   time from the start of the navigation to the first marker or cluster in Leaflet's marker
   pane (a MutationObserver, ``performance.now()``); also the time until the list shows its
   count. The tile server is an address that refuses connections at once, so tiles cost
   nothing and no request leaves the machine;
3. **bytes per viewport**: the API request the page sends for a 1280x800 map (its ``bbox``
   at each zoom 11-18, ``limit`` = ``MAPSERVICE_MAX_PAGE_SIZE``) around random resources: the
   largest answer, unencoded and as sent with ``Accept-Encoding: br, gzip`` (what browsers
   send);
4. **counts per cell**: ``/api/v1/clusters`` for those views at zoom 11-14 (what the page asks
   when its area holds more than one answer): latency (one client) and size.

    python -m bench.map_bench --sizes 10000,100000 [--rounds 10] [--backend spatialite|postgis]
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .ab_http import serve
from .search_bench import (HOST, ROOT, drop_postgis_database, load, loadavg, postgis_database,
                           spatialite_database)

OUT = ROOT / "bench" / "out"
WIDTH, HEIGHT = 1280, 800  # the browser's window; the map takes ~65 % of its width
MAP_WIDTH, MAP_HEIGHT = 830, 700  # the map's size in that window (flex 65 %, minus header)


def viewport_bbox(lat: float, lon: float, zoom: int) -> tuple[float, float, float, float]:
    """The bbox of a MAP_WIDTH x MAP_HEIGHT px Web Mercator map centred at (lat, lon)."""
    scale = 256 * 2 ** zoom
    x = (lon + 180) / 360 * scale
    y = (1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat)))
         / math.pi) / 2 * scale

    def lonlat(px: float, py: float) -> tuple[float, float]:
        lon_ = px / scale * 360 - 180
        lat_ = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * py / scale))))
        return lon_, lat_

    west, north = lonlat(x - MAP_WIDTH / 2, y - MAP_HEIGHT / 2)
    east, south = lonlat(x + MAP_WIDTH / 2, y + MAP_HEIGHT / 2)
    return west, south, east, north


def get(port: int, path: str, encoding: str | None = None) -> tuple[int, bytes, int]:
    """(status, body, bytes as sent) of GET ``path``."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    headers = {"Accept-Encoding": encoding} if encoding else {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body, len(body)


def shell(port: int) -> dict[str, int]:
    status, body, _ = get(port, "/?lang=de")
    assert status == 200, status
    _, _, sent = get(port, "/?lang=de", "br, gzip")
    return {"html_bytes": len(body), "html_bytes_sent": sent}


def viewports(port: int, points: list[tuple[float, float]], limit: int) -> dict[str, Any]:
    """The largest API answer per zoom over ``points`` (the page's request for its view)."""
    out: dict[str, Any] = {}
    for zoom in range(11, 19):
        largest = largest_sent = features = 0
        for lat, lon in points:
            bbox = ",".join(f"{v:.6f}" for v in viewport_bbox(lat, lon, zoom))
            path = "/api/v1/resources?" + urlencode({"bbox": bbox, "limit": limit})
            status, body, _ = get(port, path)
            assert status == 200, (status, body[:200])
            _, _, sent = get(port, path, "br, gzip")
            largest, largest_sent = max(largest, len(body)), max(largest_sent, sent)
            features = max(features, len(json.loads(body)["features"]))
        out[str(zoom)] = {"max_bytes": largest, "max_bytes_sent": largest_sent,
                          "max_features": features}
    return out


_FIRST_MARKER = """
(() => {
  window.msTimes = {};
  new MutationObserver((changes, observer) => {
    const pane = document.querySelector(".leaflet-marker-pane");
    if (pane && pane.children.length && !window.msTimes.marker) {
      window.msTimes.marker = performance.now();
    }
    const status = document.getElementById("ms-status");
    if (status && /\\d/.test(status.textContent) && !window.msTimes.list) {
      window.msTimes.list = performance.now();
    }
    if (window.msTimes.marker && window.msTimes.list) { observer.disconnect(); }
  }).observe(document, {childList: true, subtree: true, characterData: true});
})();
"""


def cluster_times(port: int, points: list[tuple[float, float]]) -> dict[str, Any]:
    """Latency and size of /api/v1/clusters for the page's view at zoom 11-14 around
    ``points`` (one cell per ~80 px, as map.js asks)."""
    grid = math.ceil(max(MAP_WIDTH, MAP_HEIGHT) / 80)
    times, sizes = [], []
    for zoom in range(11, 15):
        for lat, lon in points:
            bbox = ",".join(f"{v:.6f}" for v in viewport_bbox(lat, lon, zoom))
            path = "/api/v1/clusters?" + urlencode({"bbox": bbox, "grid": grid})
            started = time.perf_counter()
            status, body, _ = get(port, path)
            times.append((time.perf_counter() - started) * 1000)
            assert status == 200, (status, body[:200])
            sizes.append(len(body))
    times.sort()
    return {"clusters_ms": {"median": round(statistics.median(times), 1),
                            "p95": round(times[int(0.95 * (len(times) - 1))], 1),
                            "max": round(times[-1], 1)},
            "clusters_max_bytes": max(sizes), "requests": len(times)}


def first_markers(port: int, rounds: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    markers, lists = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM",
                                                                    "/usr/bin/chromium"))
        try:
            for _ in range(rounds + 1):  # the first round warms the server up, not counted
                context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
                page = context.new_page()
                page.add_init_script(_FIRST_MARKER)
                page.goto(f"http://{HOST}:{port}/?lang=de", wait_until="load")
                page.wait_for_function("() => window.msTimes.marker && window.msTimes.list",
                                       timeout=60_000)
                times = page.evaluate("() => window.msTimes")
                markers.append(times["marker"])
                lists.append(times["list"])
                context.close()
        finally:
            browser.close()
    markers, lists = markers[1:], lists[1:]
    return {"first_marker_ms": {"median": round(statistics.median(markers)),
                                "max": round(max(markers))},
            "list_ms": {"median": round(statistics.median(lists)), "max": round(max(lists))},
            "rounds": rounds}


def resource_points(port: int, count: int, rng: random.Random) -> list[tuple[float, float]]:
    """``count`` random resources' points (where people look at the map)."""
    _, body, _ = get(port, "/api/v1/resources?" + urlencode(
        {"bbox": "9.7,53.39,10.33,53.75", "limit": 1000}))
    features = json.loads(body)["features"]
    return [(f["geometry"]["coordinates"][1], f["geometry"]["coordinates"][0])
            for f in rng.sample(features, min(count, len(features)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--backend", choices=("spatialite", "postgis"), default="spatialite")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--points", type=int, default=20, help="viewport centres per zoom")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    admin = os.environ.get("MAPSERVICE_BENCH_POSTGIS_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    results: list[dict[str, Any]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        name = f"mapservice_bench_map_{size}"
        url = (postgis_database(admin, name) if args.backend == "postgis"
               else spatialite_database(OUT / f"map-bench-{size}.sqlite"))
        try:
            loaded = load(url, size, args.seed)
            proc, port = serve([sys.executable, "-m", "mapservice", "serve", "--port", "{port}",
                                "--workers", "2"], url, ROOT,
                               MAPSERVICE_TILE_URL="http://127.0.0.1:9/{z}/{x}/{y}.png")
            try:
                limit = 1000
                row = {"size": size, "backend": args.backend, "load": loaded,
                       "loadavg_before": loadavg(), **shell(port)}
                row.update(first_markers(port, args.rounds))
                points = resource_points(port, args.points, random.Random(args.seed))
                row["viewports"] = viewports(port, points, limit)
                row.update(cluster_times(port, points))
                row["loadavg_after"] = loadavg()
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
        finally:
            if args.backend == "postgis":
                drop_postgis_database(admin, name)
        results.append(row)
        print(f"\n{size:,} resources ({args.backend}), load average {row['loadavg_before']}")
        print(f"  HTML shell: {row['html_bytes']:,} bytes ({row['html_bytes_sent']:,} sent)")
        print(f"  first markers: median {row['first_marker_ms']['median']} ms, max "
              f"{row['first_marker_ms']['max']} ms; list filled: median "
              f"{row['list_ms']['median']} ms ({args.rounds} rounds, fresh browser context)")
        print("  largest viewport answer per zoom (unencoded / sent with br, features):")
        for zoom, v in row["viewports"].items():
            print(f"    z{zoom}: {v['max_bytes']:,} / {v['max_bytes_sent']:,} bytes, "
                  f"{v['max_features']} features")
        print(f"  /api/v1/clusters, zoom 11-14 ({row['requests']} requests): median "
              f"{row['clusters_ms']['median']} ms, p95 {row['clusters_ms']['p95']} ms, max "
              f"{row['clusters_ms']['max']} ms; at most {row['clusters_max_bytes']:,} bytes")
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"map-bench-{stamp}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
