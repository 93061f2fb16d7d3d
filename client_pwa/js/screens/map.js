// A village's map (issue 12): its facilities as coloured points (fill = kind, red ring = a
// problem on record), the phone's position with its accuracy circle, "导航到这里" (a geo: link)
// and 查看设施 in each point's popup, and 下载离线地图: the village's tiles at chosen zoom levels
// saved on the phone, with the tile count and estimated size shown first and a size limit
// (MAP_OFFLINE_MAX_MB). Drawing, tiles and saving are in ../map_core.js.

import { formatBytes, t } from '../i18n.js';
import { TILE_BYTES_ESTIMATE, boxOf, createMap, downloadTiles, ensureCss, tileStore, tilesFor } from '../map_core.js';
import * as store from '../store.js';
import { h } from './ui.js';

const KINDS = ['toilet', 'rubbish', 'fire', 'zone'];
const DEFAULT_MAP = { tile_url: '', subdomains: 'abc', datum: 'wgs84', attribution: '', max_zoom: 18, offline_max_mb: 50 };

/** The map settings: from the server when online (kept for offline loads), else the kept ones. */
async function mapConfig() {
  const kept = await store.getMeta('map_config');
  if (navigator.onLine) {
    try {
      const response = await fetch('/app/config.json', { cache: 'no-store' });
      if (response.ok) {
        const body = await response.json();
        const fresh = { ...DEFAULT_MAP, ...(body.map || {}) };
        await store.setMeta('map_config', fresh);
        return fresh;
      }
    } catch {
      // the server is away: the kept settings hold
    }
  }
  return { ...DEFAULT_MAP, ...(kept || {}) };
}

export async function show(app, seq, code) {
  const v = await store.village(code);
  const facilities = await store.facilitiesOf(code);
  const config = await mapConfig();
  const points = facilities.filter((f) => f.lat != null && f.lon != null);
  const saved = await store.getMeta(`offline_map:${code}`);
  await ensureCss();

  const note = h('p.muted.small.vc-map-note');
  const notes = [];
  if (!config.tile_url) notes.push(t('map_no_tiles'));
  else if (!navigator.onLine && !saved) notes.push(t('map_offline_uncached'));
  if (saved && config.tile_url) notes.push(t('map_offline_saved', { n: saved.count, size: formatBytes(saved.bytes) }));
  if (!points.length) notes.push(t('map_no_points'));
  else if (points.length < facilities.length) notes.push(t('map_unplaced', { n: facilities.length - points.length }));
  note.textContent = notes.join('；');

  const legend = h('div.vc-map-legend',
    ...KINDS.map((k) => h('span', h(`span.dot.${k}`), t(`kind_${k}`))),
    h('span', h('span.dot.bad'), t('map_legend_bad')),
    navigator.geolocation ? h('span', h('span.dot.me'), t('map_legend_me')) : null);
  const mapEl = h('div.vc-map-screen', { id: 'village-map' });
  const offline = config.tile_url && points.length ? offlinePanel(code, points, config, note) : null;
  const el = h('div', legend, note, mapEl, offline);
  if (!app.mount(seq, el, { title: t('map_title', { name: v ? v.name : code }), back: `/village/${code}` })) return;

  const labels = {
    navigate: t('map_navigate'),
    kinds: Object.fromEntries(KINDS.map((k) => [k, t(`kind_${k}`)])),
    states: { good: t('map_state_good'), bad: t('map_state_bad'), unknown: t('map_state_unknown'), retired: t('map_state_retired') },
  };
  const view = createMap(mapEl, {
    config,
    points,
    labels,
    popup: (p) => [h('a.vc-open', { href: `#/facility/${encodeURIComponent(p.id)}` }, t('map_open_facility'))],
  });
  window.villageMap = view; // for tests and debugging from the console

  if (navigator.geolocation) {
    const watch = navigator.geolocation.watchPosition(
      (p) => view.setPosition({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy }),
      () => {},
      { enableHighAccuracy: true, maximumAge: 30000, timeout: 20000 },
    );
    app.onLeave(() => {
      navigator.geolocation.clearWatch(watch);
      view.map.remove();
    });
  } else {
    app.onLeave(() => view.map.remove());
  }
}

/** 下载离线地图: choose zoom levels, see count and size, download with progress. */
function offlinePanel(code, points, config, note) {
  const maxZoom = Math.min(Number(config.max_zoom) || 18, 19);
  const limitMb = Number(config.offline_max_mb) || 0;
  const box = boxOf(points, config);
  const zooms = [];
  for (let z = 10; z <= maxZoom; z += 1) zooms.push(z);
  const select = (value) => {
    const el = h('select', {}, ...zooms.map((z) => h('option', { value: String(z) }, String(z))));
    el.value = String(value);
    return el;
  };
  const from = select(Math.min(14, maxZoom));
  const to = select(Math.min(17, maxZoom));
  const estimate = h('p.vc-offline-estimate');
  const progress = h('progress.vc-offline-progress', { max: 1, value: 0, hidden: true });
  const status = h('p.vc-offline-status.muted.small');
  const button = h('button.btn.primary.vc-offline-download', { type: 'button' }, t('map_offline_download'));
  let tiles = [];

  function recount() {
    const lo = Math.min(Number(from.value), Number(to.value));
    const hi = Math.max(Number(from.value), Number(to.value));
    tiles = tilesFor(box, lo, hi, config);
    const bytes = tiles.length * TILE_BYTES_ESTIMATE;
    estimate.textContent = t('map_offline_estimate', { n: tiles.length, size: formatBytes(bytes) });
    const tooBig = limitMb > 0 && bytes > limitMb * 1024 * 1024;
    estimate.classList.toggle('error', tooBig);
    status.textContent = tooBig ? t('map_offline_too_big', { limit: limitMb }) : '';
    button.disabled = tooBig || !tileStore.kind;
    if (!tileStore.kind) status.textContent = t('map_offline_unsupported');
  }
  from.addEventListener('change', recount);
  to.addEventListener('change', recount);

  button.addEventListener('click', async () => {
    if (!navigator.onLine) {
      status.textContent = t('map_offline_needs_net');
      return;
    }
    recount();
    if (button.disabled) return;
    button.disabled = true;
    progress.hidden = false;
    progress.max = tiles.length;
    const result = await downloadTiles(tiles, {
      onProgress: ({ done, total }) => {
        progress.value = done;
        status.textContent = t('map_offline_progress', { done, total });
      },
    });
    const before = (await store.getMeta(`offline_map:${code}`)) || { bytes: 0 };
    const saved = { count: result.total - result.failed, bytes: before.bytes + result.bytes, at: Date.now() };
    await store.setMeta(`offline_map:${code}`, saved);
    status.textContent = [t('map_offline_done', { n: saved.count, size: formatBytes(saved.bytes) }),
      result.failed ? t('map_offline_failed', { n: result.failed }) : ''].filter(Boolean).join('；');
    status.classList.add('vc-offline-done');
    button.disabled = false;
    note.textContent = t('map_offline_saved', { n: saved.count, size: formatBytes(saved.bytes) });
  });
  recount();
  return h('div.card.vc-offline',
    h('h2', t('map_offline_title')),
    h('label', t('map_zoom_from'), ' ', from), h('label', t('map_zoom_to'), ' ', to),
    estimate, progress, status, button);
}
