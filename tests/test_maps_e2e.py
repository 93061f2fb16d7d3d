"""Maps (issue 12) in Chromium at 360×740: the app's village map and the desk's, against a tile
server this module runs on loopback (generated PNG tiles, every request counted).

One browser, one app server, one tile server for the module; every wait is on a condition.
"""

import io
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import Phone
from pwa_helpers import (
    VIEWPORT,
    LiveServer,
    log_in,
    make_app,
    new_phone,
    open_app,
    shot,
    wait_service_worker,
)
from test_supervisor import quick_submission

from server.maps import client_config, tile_origin
from server.storage import connect

YUNYU = "450222101001"  # 云屿村: 24 facilities, all with positions
TONGPU = "450222101002"
INSPECTOR = ("inspector", "Field-Team1-2026")
SUPERVISOR = ("supervisor", "Desk-Super-2026")
KIND_COLOURS = {"toilet": "#1e6fd9", "rubbish": "#8d5a2b", "fire": "#e0302a", "zone": "#2f9e44"}
STATE_RINGS = {"good": "#ffffff", "bad": "#b00020", "unknown": "#9e9e9e", "retired": "#444444"}
TILE_PATH = re.compile(r"^/(\d+)/(\d+)/(\d+)\.png$")


# ---- without a browser -----------------------------------------------------------------------


def test_tile_settings_reach_the_app_and_the_csp(tmp_path, demo_db):
    app = make_app(tmp_path, demo_db)
    client = app.test_client()
    body = client.get("/app/config.json").get_json()
    assert body["map"]["tile_url"] == "" and body["map"]["offline_max_mb"] == 50
    csp = client.get("/app/config.json").headers["Content-Security-Policy"]
    assert "img-src 'self' blob:;" in csp  # no tile server: nothing added

    app.config.update(
        MAP_TILE_URL="https://t{s}.tianditu.gov.cn/vec_w/wmts?TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=K",
        MAP_TILE_SUBDOMAINS="01234567",
        MAP_TILE_DATUM="GCJ02",
        MAP_MAX_ZOOM="17",
    )
    body = client.get("/app/config.json").get_json()["map"]
    assert body["subdomains"] == "01234567" and body["datum"] == "gcj02" and body["max_zoom"] == 17
    csp = client.get("/app/config.json").headers["Content-Security-Policy"]
    assert "img-src 'self' blob: https://*.tianditu.gov.cn;" in csp
    assert "connect-src 'self' https://*.tianditu.gov.cn;" in csp

    # Anything but a plain http(s) template is no tile server, and never reaches the CSP.
    for bad in ("javascript:alert(1)", "https://x.cn;script-src */{z}", "ftp://x.cn/{z}"):
        assert tile_origin(bad) == ""
        assert client_config({"MAP_TILE_URL": bad})["tile_url"] == ""
    assert client_config({"MAP_TILE_DATUM": "bd09"})["datum"] == "wgs84"


# ---- the tile server -------------------------------------------------------------------------


class TileServer:
    """Generated 256 px PNG tiles at /{z}/{x}/{y}.png with CORS, counting requests."""

    def __init__(self):
        from PIL import Image, ImageDraw

        self.count = 0
        self.lock = threading.Lock()
        cache = {}
        outer = self

        def tile(z, x, y):
            if (z, x, y) not in cache:
                image = Image.new("RGB", (256, 256), (226 - 4 * (z % 5), 236, 214 + 6 * (z % 5)))
                draw = ImageDraw.Draw(image)
                draw.rectangle((0, 0, 255, 255), outline=(150, 170, 140))
                draw.text((8, 8), f"{z}/{x}/{y}", fill=(60, 80, 60))
                buffer = io.BytesIO()
                image.save(buffer, "PNG")
                cache[(z, x, y)] = buffer.getvalue()
            return cache[(z, x, y)]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with outer.lock:
                    outer.count += 1
                m = TILE_PATH.match(self.path)
                if not m:
                    self.send_error(404)
                    return
                body = tile(*map(int, m.groups()))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/{{z}}/{{x}}/{{y}}.png"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tiles():
    server = TileServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory, demo_db, tiles):
    app = make_app(tmp_path_factory.mktemp("maps"), demo_db)
    app.config.update(MAP_TILE_URL=tiles.url, MAP_TILE_ATTRIBUTION="测试底图", MAP_OFFLINE_MAX_MB=5)
    toilet = next(f for f in facilities_of(app, YUNYU).values() if f["kind"] == "toilet")
    app.submission_id = quick_submission(Phone(app.test_client(), "inspector"), toilet["id"])
    app.toilet_id = toilet["id"]
    with LiveServer(app) as server:
        yield server


def facilities(live, village):
    return facilities_of(live.app, village)


def facilities_of(app, village):
    store = connect(app.config["DATABASE_URL"])
    try:
        return {f["id"]: f for f in store.facilities(village)}
    finally:
        store.close()


def pins(page):
    """Every drawn facility point: its classes, fill and ring colour."""
    return page.eval_on_selector_all(
        "path.vc-pin",
        "els => els.map(e => ({cls: e.getAttribute('class'), fill: e.getAttribute('fill'),"
        " stroke: e.getAttribute('stroke')}))",
    )


def check_pins(page, expected):
    drawn = pins(page)
    assert len(drawn) == len(expected)
    by_kind = {}
    for pin in drawn:
        kind = re.search(r"vc-kind-(\w+)", pin["cls"]).group(1)
        state = re.search(r"vc-state-(\w+)", pin["cls"]).group(1)
        assert pin["fill"] == KIND_COLOURS[kind], pin
        assert pin["stroke"] == STATE_RINGS[state], pin
        by_kind[kind] = by_kind.get(kind, 0) + 1
    want = {}
    for f in expected.values():
        want[f["kind"]] = want.get(f["kind"], 0) + 1
    assert by_kind == want


def wait_tiles_settled(page):
    """Until every tile the map asked for has loaded or failed."""
    page.wait_for_function(
        "() => document.querySelectorAll('#village-map img.leaflet-tile').length > 0 &&"
        " !document.querySelector('#village-map .leaflet-tile-container"
        " img:not(.leaflet-tile-loaded):not(.vc-tile-missing)')",
        timeout=15000,
    )


# ---- in the browser --------------------------------------------------------------------------


def test_village_map_pins_position_offline_tiles_fallback_and_desk(browser, live, tiles):
    yunyu = facilities(live, YUNYU)
    context = new_phone(browser, live)
    page = open_app(context, live)
    log_in(page, *INSPECTOR)
    wait_service_worker(page)

    # The village screen links to its map.
    page.goto(f"{live.url}/#/village/{YUNYU}")
    page.wait_for_selector("main a.row")
    shot(page, "maps-village-screen-link")
    page.click("a.map-link")
    page.wait_for_selector("#village-map path.vc-pin")
    check_pins(page, yunyu)

    # The phone's own position with its accuracy circle (geolocation emulated).
    page.wait_for_selector("#village-map path.vc-own")
    assert page.locator("#village-map path.vc-accuracy").count() == 1

    # Tiles from the loopback tile server, online.
    wait_tiles_settled(page)
    assert page.locator("#village-map img.leaflet-tile-loaded[data-source=network]").count() > 0
    assert tiles.count > 0
    assert "测试底图" in page.inner_text(".leaflet-control-attribution")
    assert page.locator(".leaflet-control-scale").count() == 1

    # A point's popup: its name and a geo: navigation link with its WGS-84 position.
    first = next(f for f in yunyu.values() if f["kind"] == "fire")
    page.evaluate(
        "id => window.villageMap.layer.getLayers().find((m) => m.vcPoint.id === id).openPopup()",
        first["id"],
    )
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert first["name"] in popup.inner_text()
    href = popup.locator("a.vc-navigate").get_attribute("href")
    ll = f"{first['lat']:.6f},{first['lon']:.6f}"
    assert href.startswith(f"geo:{ll}?q={ll}(")
    assert popup.locator("a.vc-open").get_attribute("href") == f"#/facility/{first['id']}"
    shot(page, "maps-village-online")

    # 下载离线地图: count and estimated size first; above the limit (5 MB here) refused.
    estimate = page.locator(".vc-offline-estimate")
    assert re.search(r"共 94 张图块，约 1\.8 MB", estimate.inner_text()), estimate.inner_text()
    page.select_option(".vc-offline select >> nth=1", "18")
    assert re.search(r"共 334 张图块", estimate.inner_text())
    assert "超过上限 5 MB" in page.inner_text(".vc-offline-status")
    assert page.locator("button.vc-offline-download").is_disabled()
    page.select_option(".vc-offline select >> nth=1", "17")
    before = tiles.count
    page.click("button.vc-offline-download")
    page.wait_for_selector(".vc-offline-status.vc-offline-done", timeout=20000)
    assert "离线地图已保存：94 张图块" in page.inner_text(".vc-offline-status")
    assert 0 < tiles.count - before <= 94  # each tile fetched at most once
    shot(page, "maps-offline-download")

    # Offline: the app reopens and the village's tiles come from the phone, not the server.
    context.set_offline(True)
    served = tiles.count
    page.reload()
    page.wait_for_selector("#village-map path.vc-pin", timeout=15000)
    check_pins(page, yunyu)
    wait_tiles_settled(page)
    assert page.locator("#village-map img.leaflet-tile-loaded[data-source=saved]").count() > 0
    assert page.locator("#village-map img[data-source=network]").count() == 0
    assert page.evaluate(
        "() => [...document.querySelectorAll('#village-map img[data-source=saved]')]"
        ".every((img) => img.complete && img.naturalWidth === 256)"
    )
    assert "已下载离线地图：94 张图块" in page.inner_text(".vc-map-note")
    shot(page, "maps-offline-from-cache")

    # Offline, another village not downloaded: points on the plain background, no broken tiles.
    tongpu = facilities(live, TONGPU)
    page.goto(f"{live.url}/#/map/{TONGPU}")
    page.wait_for_function(
        f"() => document.querySelectorAll('#village-map path.vc-pin').length === {len(tongpu)}"
    )
    assert "离线且未下载本村地图" in page.inner_text(".vc-map-note")
    assert page.locator("#village-map img.leaflet-tile:not(.vc-tile-missing)").count() == 0
    assert tiles.count == served  # nothing reached the tile server while offline
    shot(page, "maps-offline-uncached")
    context.set_offline(False)

    # No tile server set: points on a light background with a scale bar, never a grey box.
    live.app.config["MAP_TILE_URL"] = ""
    try:
        page.goto(f"{live.url}/#/map/{TONGPU}")
        page.wait_for_selector("#village-map.vc-map-plain path.vc-pin")
        check_pins(page, tongpu)
        assert page.locator("#village-map img").count() == 0
        assert page.locator("#village-map .leaflet-control-scale-line").count() == 1
        assert "未设置底图" in page.inner_text(".vc-map-note")
        assert page.locator(".vc-offline").count() == 0
        background = page.eval_on_selector(
            "#village-map", "e => getComputedStyle(e).backgroundColor"
        )
        assert background == "rgb(241, 244, 236)"
        shot(page, "maps-no-tile-server")
    finally:
        live.app.config["MAP_TILE_URL"] = tiles.url
    assert not page.errors, page.errors
    context.close()

    # The desk: the queue filtered to a village shows its map; a submission shows its facility.
    desk = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = desk.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(f"{live.url}/login")
    page.fill("input[name=username]", SUPERVISOR[0])
    page.fill("input[name=password]", SUPERVISOR[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/desk")
    page.goto(f"{live.url}/desk/queue?village={YUNYU}&state=all")
    page.wait_for_selector("#desk-map[data-ready='1'] path.vc-pin")
    check_pins(page, yunyu)
    page.wait_for_function(
        "() => document.querySelectorAll('#desk-map img.leaflet-tile-loaded').length > 0",
        timeout=15000,
    )
    page.locator("#desk-map").scroll_into_view_if_needed()
    shot(page, "maps-desk-village")
    page.click(f"table.queue a[href*='/desk/submissions/{live.app.submission_id}']")
    page.wait_for_selector("#desk-map[data-ready='1'] path.vc-pin")
    assert page.locator("#desk-map path.vc-pin").count() == len(yunyu)
    highlighted = page.locator("#desk-map path.vc-pin.vc-highlight")
    assert highlighted.count() == 1  # the submission's own toilet
    assert "vc-kind-toilet" in highlighted.get_attribute("class")
    page.locator("#desk-map").scroll_into_view_if_needed()
    shot(page, "maps-desk-submission")
    assert not page.errors, page.errors
    desk.close()
