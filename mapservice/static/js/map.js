/* mapservice map: loads the resources of the visible area from the API into the cluster layer
   and the accessible result list. User content is only ever set as text, never as HTML. */
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function safeUrl(url) {
    try {
      var parsed = new URL(url, window.location.href);
      return (parsed.protocol === "http:" || parsed.protocol === "https:") ? parsed.href : null;
    } catch (e) { return null; }
  }

  function categoryInfo(options, code) {
    return (options.categories && options.categories[code]) || {label: code, icon: "circle", color: "blue"};
  }

  // OSM opening_hours in the page's language: weekday abbreviations as the browser names the
  // weekdays (Intl), "PH" and "off"/"closed" from the page's texts; times, months and comments
  // as written. The listing's own string stays in the element's title.
  var DAYS = {Mo: 0, Tu: 1, We: 2, Th: 3, Fr: 4, Sa: 5, Su: 6};
  var dayNames = {};

  function dayName(lang, i) {
    if (!dayNames[lang]) {
      var format = new Intl.DateTimeFormat(lang, {weekday: "short", timeZone: "UTC"});
      dayNames[lang] = [0, 1, 2, 3, 4, 5, 6].map(function (d) {
        return format.format(new Date(Date.UTC(2024, 0, 1 + d)));  // 1 January 2024: a Monday
      });
    }
    return dayNames[lang][i];
  }

  function hoursText(value, options) {
    if (value.trim() === "24/7") { return options.texts.always; }
    // outside the quoted comments: the separators of the page's language too (Arabic and
    // Farsi "؛" and "،")
    return value.split(/("[^"]*")/).map(function (part, i) {
      if (i % 2) { return part; }
      return part.replace(/\b(Mo|Tu|We|Th|Fr|Sa|Su|PH|off|closed)\b/g, function (token) {
        if (Object.prototype.hasOwnProperty.call(DAYS, token)) { return dayName(options.lang, DAYS[token]); }
        return token === "PH" ? options.texts.holidays : options.texts.closed;
      }).replace(/\s*;\s*/g, options.texts.semicolon || "; ")
        .replace(/\s*,\s*/g, options.texts.comma || ",");
    }).join("");
  }

  // A text of the listing (any language, any direction) inside the page's direction: isolated
  // in a <bdi>, so that a German name keeps its order in an Arabic page and the line it is on
  // stays aligned with the page.
  function isolated(tag, attrs, text, lang) {
    var node = el(tag, attrs);
    node.appendChild(el("bdi", lang ? {lang: lang} : {}, text));
    return node;
  }

  // The language the listings are written in (names, addresses), where it is not the page's:
  // a screen reader then reads "Bücherhalle Altona" with a German voice in an Arabic page.
  function dataLang(options) {
    return options.dataLang && options.dataLang !== options.lang ? options.dataLang : null;
  }

  function popupContent(props, options) {
    // in the page's direction (the categories, hours and links are in its language);
    // focusable, so that opening a place from the list can move the focus to it
    var box = el("div", {"class": "ms-popup", tabindex: "-1"});
    box.appendChild(isolated("strong", {}, props.name, dataLang(options)));
    var cats = (props.categories || []).map(function (c) { return categoryInfo(options, c).label; });
    if (cats.length) { box.appendChild(el("div", {"class": "ms-cats"}, cats.join(" · "))); }
    if (props.address || props.postcode) {
      box.appendChild(isolated("div", {}, [props.address, [props.postcode, props.stadtteil].filter(Boolean).join(" ")].filter(Boolean).join(", "), dataLang(options)));
    } else if (props.location_confidential) {
      box.appendChild(el("div", {"class": "ms-approx"}, options.texts.approximate));
    }
    if (props.opening_hours) {
      box.appendChild(el("div", {"class": "ms-hours", title: props.opening_hours},
                         hoursText(props.opening_hours, options)));
    }
    if (props.phone) {
      var tel = el("a", {href: "tel:" + String(props.phone).replace(/[^+0-9]/g, ""), dir: "ltr"}, props.phone);
      box.appendChild(el("div")).appendChild(tel);
    }
    var web = props.website && safeUrl(props.website);
    if (web) {
      box.appendChild(el("div")).appendChild(el("a", {href: web, rel: "noopener noreferrer", target: "_blank"}, options.texts.website));
    }
    return box;
  }

  function attach(map, cluster, options) {
    // metric only: one line, which the attribution beside it does not cover on a phone
    L.control.scale({imperial: false}).addTo(map);
    // Leaflet names its buttons in English ("Zoom in", "Close popup"): in the page's language
    function name(node, text) {
      if (node && text) { node.setAttribute("title", text); node.setAttribute("aria-label", text); }
    }
    // the map's own box takes the keyboard (arrows move it, + and - zoom): say so
    if (document.getElementById("ms-map-keys")) {
      map.getContainer().setAttribute("aria-describedby", "ms-map-keys");
    }
    if (map.zoomControl) {
      var zoom = map.zoomControl.getContainer();
      name(zoom.querySelector(".leaflet-control-zoom-in"), options.texts.zoomin);
      name(zoom.querySelector(".leaflet-control-zoom-out"), options.texts.zoomout);
    }
    // A cluster is a button: its name says what it holds and does ("12 places here, zoom
    // in"), not only the number it shows (markercluster's own classes and sizes).
    function countIcon(n) {
      var box = el("div");
      box.appendChild(el("span", {"aria-hidden": "true"}, n));
      box.appendChild(el("span", {"class": "ms-sr"}, options.texts.cluster.replace("%(n)s", String(n))));
      return L.divIcon({html: box, iconSize: L.point(40, 40), className: "marker-cluster marker-cluster-" +
                        (n < 10 ? "small" : n < 100 ? "medium" : "large")});
    }
    cluster.options.iconCreateFunction = function (group) { return countIcon(group.getChildCount()); };
    // More places in the area than one answer may carry: the server counts them per cell of
    // a grid (/api/v1/clusters), and the map shows those counts, each a button that zooms
    // in, instead of an arbitrary thousand of them (which in a table filled in spatial
    // order were all in one corner of the city).
    var cells = L.layerGroup().addTo(map);
    var CELL_PX = 80;
    var cellFocus = false;  // a cell was used: its successor (or the map) takes the focus
    var cellMode = false;  // the map shows counts per cell (the area held too many places)
    var list = document.getElementById("ms-results");
    var status = document.getElementById("ms-status");
    var pending = null;
    var generation = 0;
    var nearNote = false;  // the next status line says that the map moved to the visitor

    function load() {
      var b = map.getBounds();
      var params = new URLSearchParams(window.location.search);
      var query = new URLSearchParams();
      options.filters.forEach(function (k) {
        params.getAll(k).forEach(function (v) { query.append(k, v); });
      });
      query.set("bbox", [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) {
        return Math.max(-180, Math.min(180, v)).toFixed(6); }).join(","));
      var mine = ++generation;
      function json(r) { if (!r.ok) { throw new Error(r.status); } return r.json(); }
      function places() {
        var q = new URLSearchParams(query);
        q.set("limit", String(options.limit));
        return fetch(options.api + "?" + q.toString(), {headers: {Accept: "application/geo+json"}})
          .then(json);
      }
      function counts() {
        var q = new URLSearchParams(query);
        q.set("grid", String(Math.max(1, Math.min(64, Math.ceil(map.getSize().x / CELL_PX)))));
        return fetch(options.clusters + "?" + q.toString()).then(json);
      }
      function more(data) { return (data.links || []).some(function (l) { return l.rel === "next"; }); }
      // The places of the area; too many for one answer: their counts per cell. A map that
      // showed counts asks for the counts first (a crowded area stays crowded while it pans or
      // zooms out), and for the places only when the counts say they fit in one answer.
      (cellMode ? counts().then(function (grid) {
        if (mine !== generation) { return null; }
        if (grid.numberMatched > options.limit) { showCells(grid); return null; }
        return places().then(function (data) { if (mine === generation) { show(data); } });
      }) : places().then(function (data) {
        if (mine !== generation) { return null; }
        if (!more(data)) { show(data); return null; }
        return counts().then(function (grid) { if (mine === generation) { showCells(grid); } });
      }))
        .catch(function () { if (status) { status.textContent = options.texts.error; } });
    }

    // The markers on the map by the listing's id. A new answer (after every move) keeps the
    // markers it still holds, so that an open popup stays open (a click in the list pans the
    // map to its marker, and that move loads the area again); only the others are replaced.
    var shown = {};

    function markerFor(f) {
      var key = f.id + " " + f.geometry.coordinates.join(",");
      var marker = shown[key];
      if (!marker) {
        var info = categoryInfo(options, (f.properties.categories || [])[0]);
        marker = L.marker([f.geometry.coordinates[1], f.geometry.coordinates[0]], {
          title: f.properties.name,
          icon: L.AwesomeMarkers.icon({icon: info.icon, prefix: "fa", markerColor: info.color})
        });
        // kept clear of the zoom buttons (top left, also in right-to-left pages)
        // and no wider than a phone's map leaves beside them
        marker.bindPopup(function () { return popupContent(marker.msProps, options); },
                         {autoPanPaddingTopLeft: L.point(56, 84),
                          maxWidth: Math.max(160, Math.min(300, map.getSize().x - 120))});
      }
      marker.msKey = key;
      marker.msProps = f.properties;  // the newest answer's text, for the next popup
      return marker;
    }

    // Opening a place from the list moves the focus into its popup, and closing that popup
    // (Escape, its close button) brings it back to the place's entry in the list: the list is
    // rebuilt after every move of the map, and a keyboard or screen-reader user must not be
    // dropped at the top of the page.
    var returnTo = null;  // {key: a list entry} or {node: a marker's element}
    var openMarker = null;  // whose popup is open: kept on the map by show()

    function focusPopup(marker) {
      var popup = marker.getPopup();
      var box = popup && popup.getElement() && popup.getElement().querySelector(".ms-popup");
      if (!box) { return; }
      // the focus moves without scrolling the map's own box (Leaflet positions its panes);
      // the page scrolls the map into view instead (on a phone the list is below it)
      box.focus({preventScroll: true});
      var r = map.getContainer().getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) {
        map.getContainer().scrollIntoView({block: "nearest"});
      }
    }

    function listEntry(key) {
      return list && Array.prototype.find.call(list.querySelectorAll("button[data-key]"),
        function (b) { return b.getAttribute("data-key") === key; });
    }

    map.on("popupopen", function (event) {
      var popup = event.popup;
      var source = popup._source;
      openMarker = source || null;
      var node = popup.getElement();
      if (!node) { return; }
      name(node.querySelector(".leaflet-popup-close-button"), options.texts.close);
      if (!node.msEscape) {  // Escape closes it, also on its close button
        node.msEscape = true;
        node.addEventListener("keydown", function (e) {
          if (e.key === "Escape") { map.closePopup(popup); }
        });
      }
      // opened from a marker with the keyboard: the focus goes into the popup (its links
      // would otherwise come after every other marker) and back to the marker on close
      var icon = source && source.getElement && source.getElement();
      if (icon && document.activeElement === icon && returnTo === null) {
        returnTo = {node: icon};
        focusPopup(source);
      }
    });

    map.on("popupclose", function (event) {
      if (event.popup._source === openMarker) { openMarker = null; }
      if (returnTo === null) { return; }
      var target = returnTo;
      returnTo = null;
      // only when the focus was in the popup (Escape, its close button; Leaflet may still be
      // fading it out) or went down with it, not when a click on the map took it
      var active = document.activeElement;
      var closed = event.popup && event.popup.getElement();
      if (active && active !== document.body && !(closed && closed.contains(active))) { return; }
      var back = target.key !== undefined ? listEntry(target.key) :
        (target.node && document.body.contains(target.node) ? target.node : null);
      (back || document.getElementById("ms-content")).focus();
    });

    function showCells(grid) {
      cellMode = true;
      var hadFocus = cellHasFocus();
      map.closePopup();
      cluster.clearLayers();
      shown = {};
      cells.clearLayers();
      grid.features.forEach(function (f) {
        var at = L.latLng(f.geometry.coordinates[1], f.geometry.coordinates[0]);
        function zoomIn() {
          cellFocus = true;
          map.setView(at, Math.min(map.getZoom() + 2, map.getMaxZoom()));
        }
        var cell = L.marker(at, {icon: countIcon(f.properties.count), keyboard: true})
          .on("click", zoomIn).addTo(cells);
        // a button: Enter and Space too (Leaflet handles Enter only for markers with a popup)
        cell.getElement().addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); zoomIn(); }
        });
      });
      // the cell that was used is gone with the reload: the keyboard goes on from the map
      if (hadFocus) { refocusMap(); }
      if (list) {
        if (list.contains(document.activeElement)) {
          document.getElementById("ms-content").focus({preventScroll: true});
        }
        list.textContent = "";
      }
      if (status) {
        status.textContent = (nearNote ? options.texts.nearme + " " : "") +
          options.texts.many.replace("%(n)s", String(grid.numberMatched));
      }
      nearNote = false;
      remember();
    }

    function cellHasFocus() {
      var had = cellFocus || cells.getLayers().some(function (cell) {
        return cell.getElement() === document.activeElement;
      });
      cellFocus = false;
      return had;
    }

    function refocusMap() {
      if (!document.activeElement || document.activeElement === document.body) {
        map.getContainer().focus({preventScroll: true});
      }
    }

    function show(data) {
      cellMode = false;
      var cellHadFocus = cellHasFocus();
      cells.clearLayers();
      if (cellHadFocus) { refocusMap(); }
      // a marker that has the keyboard's focus (Tab moves through them and pans the map,
      // whose reload then clusters them anew) keeps it, or hands it to its cluster
      var focusedMarker = null;
      Object.keys(shown).some(function (key) {
        var icon = shown[key].getElement && shown[key].getElement();
        if (icon && icon === document.activeElement) { focusedMarker = shown[key]; }
        return focusedMarker !== null;
      });
      var next = {};
      var added = [];
      // the entry that has the focus gets it back in the new list (or the list itself)
      var focused = list && list.contains(document.activeElement) ?
        document.activeElement.getAttribute("data-key") : null;
      if (list) {
        list.textContent = "";
        list.style.setProperty("--ms-digits", String(String(data.features.length).length));
      }
      data.features.forEach(function (f) {
        var p = f.properties;
        var marker = markerFor(f);
        if (!shown[marker.msKey] && !next[marker.msKey]) { added.push(marker); }
        next[marker.msKey] = marker;
        if (list) {
          var item = el("li");
          var attrs = {type: "button", "class": "ms-result", dir: "auto", "data-key": marker.msKey};
          if (dataLang(options)) { attrs.lang = dataLang(options); }
          var button = el("button", attrs, p.name);
          button.addEventListener("click", function () {
            // the moves this causes (zooming to the marker, the popup's pan) keep the list as
            // it is: a keyboard or screen-reader user stays at their place in it (it shrank
            // to the few places of the zoomed area, 190 -> 4); the next move of their own
            // reloads it
            listMoveUntil = Infinity;
            cluster.zoomToShowLayer(marker, function () {
              returnTo = {key: marker.msKey};
              marker.openPopup();
              focusPopup(marker);
              listMoveUntil = Date.now() + 800;  // the popup's own pan, which follows
            });
          });
          item.appendChild(button);
          var where = [p.address, p.stadtteil].filter(Boolean).join(", ");
          if (where) { item.appendChild(isolated("span", {"class": "ms-where"}, where, dataLang(options))); }
          list.appendChild(item);
        }
      });
      if (focused !== null) {
        (listEntry(focused) || document.getElementById("ms-content")).focus({preventScroll: true});
      }
      // The marker whose popup is open stays, also when the new area no longer holds it: on
      // a short map (a phone held sideways, a page zoomed to 200 %) the popup's own pan moves
      // its marker out of the area, and removing it closed the popup again at once.
      if (openMarker && openMarker.msKey && shown[openMarker.msKey] && !next[openMarker.msKey]) {
        next[openMarker.msKey] = openMarker;
      }
      cluster.removeLayers(Object.keys(shown).filter(function (key) { return !next[key]; })
        .map(function (key) { return shown[key]; }));
      cluster.addLayers(added);
      shown = next;
      if (focusedMarker && (document.activeElement === document.body || !document.activeElement)) {
        var holder = next[focusedMarker.msKey] ? cluster.getVisibleParent(focusedMarker) : null;
        var node = holder && holder.getElement && holder.getElement();
        (node || document.getElementById("ms-content")).focus({preventScroll: true});
      }
      if (status) {
        status.textContent = (nearNote ? options.texts.nearme + " " : "") +
          options.texts.count.replace("%(n)s", String(data.features.length)) +
          (data.features.length ? "" : " " + options.texts.none);  // what to do about it
      }
      nearNote = false;
      remember();
    }

    // The address bar and the language links keep the current view (and the filters).
    function remember() {
      var state = new URLSearchParams(window.location.search);
      state.delete("where");  // a place the page did not know: not part of the view
      var c = map.getCenter();
      state.set("lat", c.lat.toFixed(5)); state.set("lon", c.lng.toFixed(5)); state.set("z", String(map.getZoom()));
      window.history.replaceState(null, "", "?" + state.toString());
      // keep the language links pointing at the current view
      document.querySelectorAll(".ms-lang a[hreflang]").forEach(function (a) {
        var withLang = new URLSearchParams();  // the filters and the view, as the server does
        state.forEach(function (value, key) {
          if (options.filters.indexOf(key) >= 0 || key === "lat" || key === "lon" || key === "z") {
            withLang.append(key, value);
          }
        });
        withLang.set("lang", a.getAttribute("hreflang"));
        a.setAttribute("href", "?" + withLang.toString());
      });
    }

    var params = new URLSearchParams(window.location.search);
    var lat = parseFloat(params.get("lat")), lon = parseFloat(params.get("lon")), z = parseInt(params.get("z"), 10);
    if (isFinite(lat) && isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180) {
      // at once, not animated: a zoom animation still running would take the map back to
      // its own end when it finished, over a move the visitor made meanwhile ("Near me")
      map.setView([lat, lon], isFinite(z) ? Math.max(1, Math.min(z, 19)) : map.getZoom(),
                  {animate: false});
    }
    // The filter form keeps the map where it is (without JavaScript there is no map to keep).
    var form = document.querySelector("form.ms-filters");
    if (form) {
      form.addEventListener("submit", function () {
        // an empty field is no filter: left out of the address (the server would redirect)
        Array.prototype.forEach.call(form.elements, function (field) {
          if (field.name && field.value === "" && !field.disabled) { field.disabled = true; }
        });
        // a place typed into "where": the server centres the map there
        if (form.elements.where && form.elements.where.value.trim()) { return; }
        var c = map.getCenter();
        [["lat", c.lat.toFixed(5)], ["lon", c.lng.toFixed(5)], ["z", String(map.getZoom())]]
          .forEach(function (pair) {
            form.appendChild(el("input", {type: "hidden", name: pair[0], value: pair[1]}));
          });
      });
    }
    // "Near me": the browser's position, asked only on this click. Only an area leaves the
    // browser: the map is centred on the position rounded to a grid of ~500 m, so that the
    // API's bbox, the address bar and the tile server see that area as after any move; the
    // exact point is only drawn on the map.
    var nearMe = document.getElementById("ms-near-me");
    var you = null;
    if (nearMe && navigator.geolocation) {
      nearMe.hidden = false;
      nearMe.addEventListener("click", function () {
        navigator.geolocation.getCurrentPosition(function (position) {
          var here = L.latLng(position.coords.latitude, position.coords.longitude);
          var step = 0.0045;  // degrees of latitude: ~500 m
          var lat = Math.round(here.lat / step) * step;
          var lonStep = step / Math.max(0.05, Math.cos(lat * Math.PI / 180));
          var lon = Math.round(here.lng / lonStep) * lonStep;
          if (you) { map.removeLayer(you); }
          you = L.circleMarker(here, {radius: 7, weight: 3, color: "#ffffff", fillColor: "#1a5fb4",
                                      fillOpacity: 1, interactive: false,
                                      className: "ms-you"}).addTo(map);
          nearNote = true;
          map.setView([Math.max(-85, Math.min(85, lat)), Math.max(-180, Math.min(180, lon))],
                      14, {animate: false});
        }, function () {
          if (status) { status.textContent = options.texts.nolocation; }
        }, {enableHighAccuracy: false, timeout: 15000, maximumAge: 300000});
      });
    }
    var listMoveUntil = 0;  // until then, moves come from opening a place in the list
    map.on("moveend", function () {
      if (pending) { window.clearTimeout(pending); }
      if (Date.now() < listMoveUntil) {
        remember();  // the address bar follows the view; the list and markers stay
        return;
      }
      pending = window.setTimeout(load, 150);
    });
    load();
  }

  window.mapservice = {attach: attach, hoursText: hoursText};
}());
