// The map both the app (screens/map.js) and the desk (server/static/desk_map.js) draw: Leaflet
// with facilities as coloured points (fill = kind, ring = state; SVG circle markers, so no image
// assets and no inline styles under the CSP), a scale bar, the admin's tile layer when there is
// one (MAP_TILE_URL, /app/config.json "map"), and the tiles saved by 下载离线地图.
//
// Positions are WGS-84. On tiles declared GCJ-02 (MAP_TILE_DATUM) every point is converted
// before drawing (gcj02.js); navigation links always carry the WGS-84 position (RFC 5870 geo:).
//
// No blank grey box: the map container has a light background with a faint grid (map.css), the
// points and the scale bar are drawn with or without tiles, and a tile that cannot be had (no
// network and not saved) is hidden rather than shown broken.

import * as L from '../vendor/leaflet/leaflet-src.esm.js';
import { wgs84ToGcj02 } from './gcj02.js';

export { L };

export const KIND_COLOURS = { toilet: '#1e6fd9', rubbish: '#8d5a2b', fire: '#e0302a', zone: '#2f9e44' };
const OTHER_COLOUR = '#6b6b6b';
const OWN_COLOUR = '#7b1fa2'; // the phone's position: a colour no kind uses
export const STATE_RINGS = { good: '#ffffff', bad: '#b00020', unknown: '#9e9e9e', retired: '#444444' };
export const TILE_BYTES_ESTIMATE = 20 * 1024; // a typical 256 px PNG/JPEG map tile
const TILE_CACHE = 'villagecheck-tiles'; // not the shell's prefix: a new app version keeps it
const MARGIN_M = 300;

/** 'good', 'bad', 'unknown' (never inspected / nothing known) or 'retired', from the record. */
export function facilityState(kind, fields = {}) {
  const v = fields || {};
  if (v.status === 'retired') return 'retired';
  const bad =
    (kind === 'toilet' && (v.sanitary === false || v.in_use === false || (Array.isArray(v.hazards) && v.hazards.length > 0))) ||
    (kind === 'rubbish' && (v.running === false || v.overflow === true)) ||
    (kind === 'fire' && v.equipment_ok === false) ||
    (kind === 'zone' && v.score != null && v.score < 75);
  if (bad) return 'bad';
  const good =
    (kind === 'toilet' && (v.sanitary === true || v.harmless === true)) ||
    (kind === 'rubbish' && v.running === true) ||
    (kind === 'fire' && v.equipment_ok === true) ||
    (kind === 'zone' && v.score != null && v.score >= 75);
  return good ? 'good' : 'unknown';
}

/** geo: link for navigation apps (WGS-84, RFC 5870), with the name as the label. */
export function geoLink(lat, lon, name) {
  const ll = `${lat.toFixed(6)},${lon.toFixed(6)}`;
  return `geo:${ll}?q=${ll}(${encodeURIComponent(name || '')})`;
}

/** Load Leaflet's stylesheet and ours once per page; resolves when both apply (the map must
 * have its size before it fits its points). */
export function ensureCss() {
  return Promise.all(['/app/vendor/leaflet/leaflet.css', '/app/css/map.css'].map((href) => {
    let link = document.querySelector(`link[href="${href}"]`);
    if (link && link.sheet) return null;
    if (!link) {
      link = document.createElement('link');
      link.rel = 'stylesheet';
      link.href = href;
      document.head.append(link);
    }
    return new Promise((resolve) => {
      link.addEventListener('load', resolve, { once: true });
      link.addEventListener('error', resolve, { once: true }); // the points still draw
    });
  }));
}

// ---- saved tiles: Cache Storage, IndexedDB where there is none -------------------------------

let idbPromise = null;
function tileDb() {
  if (!idbPromise) {
    idbPromise = import('../vendor/idb/idb.js').then(({ openDB }) =>
      openDB('villagecheck-tiles', 1, { upgrade: (db) => db.createObjectStore('tiles') }));
  }
  return idbPromise;
}

export const tileStore = {
  kind: typeof caches !== 'undefined' ? 'cache' : typeof indexedDB !== 'undefined' ? 'idb' : null,
  async get(url) {
    try {
      if (this.kind === 'cache') {
        const hit = await (await caches.open(TILE_CACHE)).match(url);
        return hit ? await hit.blob() : null;
      }
      if (this.kind === 'idb') return (await (await tileDb()).get('tiles', url)) || null;
    } catch {
      // a storage error is a missing tile
    }
    return null;
  },
  async has(url) {
    if (this.kind === 'cache') return Boolean(await (await caches.open(TILE_CACHE)).match(url));
    if (this.kind === 'idb') return (await (await tileDb()).count('tiles', url)) > 0;
    return false;
  },
  async put(url, blob) {
    if (this.kind === 'cache') {
      await (await caches.open(TILE_CACHE)).put(url, new Response(blob, { headers: { 'Content-Type': blob.type || 'image/png' } }));
    } else if (this.kind === 'idb') {
      await (await tileDb()).put('tiles', blob, url);
    } else {
      throw new Error('no storage');
    }
  },
};

// ---- tiles --------------------------------------------------------------------------------

/** A tile's URL from the template; {s} picked from the subdomains by x+y as Leaflet does. */
export function tileUrl(config, z, x, y) {
  const subs = String(config.subdomains || 'abc');
  const s = subs[Math.abs(x + y) % subs.length] || '';
  return config.tile_url.replace(/\{(s|z|x|y|r)\}/g, (_, k) => ({ s, z, x, y, r: '' })[k]);
}

/** A tile layer that prefers a saved tile, then the network when online, else hides the tile. */
const SavedFirstTiles = L.TileLayer.extend({
  getTileUrl(coords) {
    return tileUrl(this.options.vcConfig, this._getZoomForUrl(), coords.x, coords.y);
  },
  createTile(coords, done) {
    const img = document.createElement('img');
    img.alt = '';
    img.setAttribute('role', 'presentation');
    const url = this.getTileUrl(coords);
    img.dataset.url = url;
    L.DomEvent.on(img, 'load', () => {
      if (img.dataset.blob) URL.revokeObjectURL(img.src);
      this._tileOnLoad(done, img);
    });
    L.DomEvent.on(img, 'error', (e) => {
      img.classList.add('vc-tile-missing');
      this._tileOnError(done, img, e);
    });
    tileStore.get(url).then((blob) => {
      if (blob) {
        img.dataset.blob = '1';
        img.dataset.source = 'saved';
        img.src = URL.createObjectURL(blob);
      } else if (navigator.onLine) {
        img.dataset.source = 'network';
        img.src = url;
      } else {
        img.classList.add('vc-tile-missing');
        done(new Error('offline and not saved'), img);
      }
    });
    return img;
  },
});

// ---- the map --------------------------------------------------------------------------------

/**
 * Draw a map into `el` (after `await ensureCss()`). points: [{id, name, kind, lat, lon, fields, highlight?}] in WGS-84;
 * popup(point) returns extra DOM nodes for a point's popup (or null). Returns
 * {map, toMap(lat, lon), setPosition(fix), hasTiles}.
 */
export function createMap(el, { config = {}, points = [], popup = null, labels = {} } = {}) {
  el.classList.add('vc-map');
  const gcj = config.datum === 'gcj02';
  const toMap = (lat, lon) => (gcj ? wgs84ToGcj02(lat, lon) : [lat, lon]);
  const maxZoom = Number(config.max_zoom) || 18;
  const map = L.map(el, { zoomControl: true, attributionControl: Boolean(config.tile_url), maxZoom });
  map.attributionControl?.setPrefix(false);
  const hasTiles = Boolean(config.tile_url);
  if (hasTiles) {
    new SavedFirstTiles(config.tile_url, { vcConfig: config, maxZoom, attribution: escapeText(config.attribution || '') }).addTo(map);
  } else {
    el.classList.add('vc-map-plain');
  }
  L.control.scale({ imperial: false }).addTo(map);

  const layer = L.featureGroup().addTo(map);
  for (const p of points) {
    if (p.lat == null || p.lon == null) continue;
    const state = facilityState(p.kind, p.fields);
    const marker = L.circleMarker(toMap(p.lat, p.lon), {
      radius: p.highlight ? 11 : 8,
      color: STATE_RINGS[state],
      weight: state === 'bad' ? 4 : 2,
      fillColor: KIND_COLOURS[p.kind] || OTHER_COLOUR,
      fillOpacity: 0.9,
      className: `vc-pin vc-kind-${safeClass(p.kind)} vc-state-${state}${p.highlight ? ' vc-highlight' : ''}`,
    });
    marker.bindPopup(() => popupContent(p, state, popup, labels));
    marker.vcPoint = p;
    marker.addTo(layer);
  }
  const focus = points.find((p) => p.highlight && p.lat != null && p.lon != null);
  if (focus) {
    map.setView(toMap(focus.lat, focus.lon), Math.min(16, maxZoom)); // one view: no tiles twice
  } else if (layer.getLayers().length) {
    map.fitBounds(layer.getBounds(), { padding: [16, 16], maxZoom: Math.min(17, maxZoom) });
  } else {
    map.setView([35, 105], 4); // nothing to show: China
  }

  let own = null;
  function setPosition(fix) {
    if (!fix || fix.lat == null) return;
    const ll = toMap(fix.lat, fix.lon);
    if (!own) {
      own = {
        circle: L.circle(ll, { radius: fix.accuracy || 0, color: OWN_COLOUR, weight: 1, fillOpacity: 0.15, className: 'vc-accuracy', interactive: false }).addTo(map),
        dot: L.circleMarker(ll, { radius: 7, color: '#ffffff', weight: 3, fillColor: OWN_COLOUR, fillOpacity: 1, className: 'vc-own', interactive: false }).addTo(map),
      };
    } else {
      own.circle.setLatLng(ll).setRadius(fix.accuracy || 0);
      own.dot.setLatLng(ll);
    }
  }
  return { map, toMap, setPosition, hasTiles, layer };
}

function escapeText(text) {
  const d = document.createElement('div');
  d.textContent = text;
  return d.innerHTML;
}

function safeClass(text) {
  return String(text || 'other').replace(/[^a-z0-9_-]/gi, '');
}

function popupContent(p, state, popup, labels) {
  const box = document.createElement('div');
  box.className = 'vc-popup';
  const name = document.createElement('strong');
  name.textContent = p.name;
  const sub = document.createElement('div');
  sub.className = 'vc-popup-sub';
  sub.textContent = [labels.kinds?.[p.kind] || p.kind, labels.states?.[state]].filter(Boolean).join(' · ');
  const nav = document.createElement('a');
  nav.className = 'vc-navigate';
  nav.href = geoLink(p.lat, p.lon, p.name);
  nav.textContent = labels.navigate || '导航到这里';
  box.append(name, sub, nav, ...((popup && popup(p)) || []));
  return box;
}

// ---- 下载离线地图 ------------------------------------------------------------------------

const lon2x = (lon, z) => Math.floor(((lon + 180) / 360) * 2 ** z);
const lat2y = (lat, z) => {
  const r = (lat * Math.PI) / 180;
  return Math.floor(((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * 2 ** z);
};

/** The box (in the tiles' datum) around the points plus a margin: [south, west, north, east]. */
export function boxOf(points, config, marginM = MARGIN_M) {
  const gcj = config.datum === 'gcj02';
  const lls = points.filter((p) => p.lat != null && p.lon != null).map((p) => (gcj ? wgs84ToGcj02(p.lat, p.lon) : [p.lat, p.lon]));
  if (!lls.length) return null;
  let [s, w, n, e] = [90, 180, -90, -180];
  for (const [lat, lon] of lls) {
    s = Math.min(s, lat); n = Math.max(n, lat); w = Math.min(w, lon); e = Math.max(e, lon);
  }
  const dLat = marginM / 111320;
  const dLon = marginM / (111320 * Math.max(0.01, Math.cos((((s + n) / 2) * Math.PI) / 180)));
  return [s - dLat, w - dLon, n + dLat, e + dLon];
}

/** Every tile {z, x, y, url} covering the box at zoom levels lo..hi. */
export function tilesFor(box, lo, hi, config) {
  const out = [];
  const [s, w, n, e] = box;
  for (let z = lo; z <= hi; z += 1) {
    for (let x = lon2x(w, z); x <= lon2x(e, z); x += 1) {
      for (let y = lat2y(n, z); y <= lat2y(s, z); y += 1) out.push({ z, x, y, url: tileUrl(config, z, x, y) });
    }
  }
  return out;
}

/**
 * Fetch and save the tiles not saved yet, a few at a time. onProgress({done, total, bytes,
 * failed}). Returns the same figures at the end.
 */
export async function downloadTiles(tiles, { onProgress = () => {}, parallel = 4 } = {}) {
  const figures = { done: 0, total: tiles.length, bytes: 0, failed: 0 };
  let next = 0;
  async function worker() {
    while (next < tiles.length) {
      const tile = tiles[next];
      next += 1;
      try {
        if (!(await tileStore.has(tile.url))) {
          const response = await fetch(tile.url, { mode: 'cors', credentials: 'omit' });
          if (!response.ok) throw new Error(String(response.status));
          const blob = await response.blob();
          await tileStore.put(tile.url, blob);
          figures.bytes += blob.size;
        }
      } catch {
        figures.failed += 1;
      }
      figures.done += 1;
      onProgress({ ...figures });
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, tiles.length) }, worker));
  return figures;
}
