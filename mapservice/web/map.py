"""Folium builds the map: vendored Leaflet and markercluster, tiles from the configured server,
and a small loader that fetches markers for the visible area from ``/api/v1/resources``."""
from __future__ import annotations

import re
from typing import Any, Mapping

import folium
from branca.element import MacroElement
from flask import url_for
from folium.plugins import MarkerCluster
from jinja2 import Template


_INLINE_SCRIPT = re.compile(r"<script>")


def _vendor(path: str) -> str:
    return url_for("static", filename=f"vendor/{path}")


def _use_vendored_assets() -> None:
    # Folium links its assets from class attributes; replace them with our vendored copies
    # (never add_js_link(): it mutates a shared list). Assigning is idempotent.
    folium.Map.default_js = [
        ("leaflet", _vendor("leaflet/leaflet.js")),
        ("jquery", _vendor("jquery/jquery.min.js")),
        ("bootstrap", _vendor("bootstrap/bootstrap.bundle.min.js")),
        ("awesome_markers", _vendor("leaflet.awesome-markers/leaflet.awesome-markers.js")),
    ]
    folium.Map.default_css = [
        ("leaflet_css", _vendor("leaflet/leaflet.css")),
        ("awesome_markers_font_css", _vendor("fontawesome/css/all.min.css")),
        ("awesome_markers_css", _vendor("leaflet.awesome-markers/leaflet.awesome-markers.css")),
        ("awesome_rotate_css", _vendor("leaflet.awesome-markers/leaflet.awesome.rotate.css")),
    ]
    MarkerCluster.default_js = [
        ("markerclusterjs", _vendor("leaflet.markercluster/leaflet.markercluster.js"))]
    MarkerCluster.default_css = [
        ("markerclustercss", _vendor("leaflet.markercluster/MarkerCluster.css")),
        ("markerclusterdefaultcss", _vendor("leaflet.markercluster/MarkerCluster.Default.css"))]


class ResourceLoader(MacroElement):
    """Hands the map and its cluster layer to ``static/js/map.js``."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        window.mapservice.attach({{ this._parent.get_name() }}, {{ this.cluster.get_name() }},
                                 {{ this.options|tojson }});
        {% endmacro %}
    """)

    def __init__(self, cluster: MarkerCluster, options: Mapping[str, Any]) -> None:
        super().__init__()
        self._name = "ResourceLoader"
        self.cluster = cluster
        self.options = dict(options)


def build_map(config: Mapping[str, Any], client: Mapping[str, Any], nonce: str
              ) -> dict[str, str]:
    """The map's head, body and script HTML, to be placed in ``map.html``; Folium's inline
    scripts in the head carry ``nonce`` (the body's script is placed by the template)."""
    _use_vendored_assets()
    fmap = folium.Map(location=[config["MAP_CENTER_LAT"], config["MAP_CENTER_LON"]],
                      zoom_start=config["MAP_ZOOM"], tiles=None, control_scale=False,
                      maxZoom=config["TILE_MAX_ZOOM"])
    folium.TileLayer(tiles=config["TILE_URL"], attr=config["TILE_ATTRIBUTION"],
                     max_zoom=config["TILE_MAX_ZOOM"], name="tiles", control=False).add_to(fmap)
    cluster = MarkerCluster(name="resources", control=False,
                            options={"chunkedLoading": True, "maxClusterRadius": 50})
    cluster.add_to(fmap)
    ResourceLoader(cluster, {"api": url_for("api.resources"), "clusters": url_for("api.clusters"),
                             "limit": config["MAX_PAGE_SIZE"],
                             **client}).add_to(fmap)
    root = fmap.get_root()
    root.render()
    header = root.header.render()
    # Folium's viewport forbids zooming the page: keep pinch-zoom for people who need it.
    header = re.sub(r'<meta name="viewport"[^>]*>', "", header, flags=re.S)
    # Inline scripts only (a script with src comes from 'self' and needs no nonce).
    header = _INLINE_SCRIPT.sub(f'<script nonce="{nonce}">', header)
    return {"header": header, "html": root.html.render(), "script": root.script.render()}
