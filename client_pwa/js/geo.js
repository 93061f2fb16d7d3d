// GPS quality on the phone (issue 11): a live watch of the position while a form or the
// registration screen is open, what its accuracy means, and how to turn location on.
//
// Quality of a fix, by its accuracy (metres, 68 %):
//   'good'    within the server's PWA_GPS_GOOD_METRES (default 50)
//   'wait'    worse than that: still "等待定位" (a photo may be taken anyway; its accuracy is kept)
//   'coarse'  worse than 1 km: a cell-tower or network (IP) position, "粗略位置（基站/网络）"
//   'none'    no fix yet; 'denied' / 'unavailable' when the browser says so.

import { serverConfig } from './caps.js';
import { t } from './i18n.js';
import { h } from './screens/ui.js';

export const COARSE_METRES = 1000;

export function goodMetres() {
  return serverConfig().gps_good_metres || 50;
}

/** 'good' | 'wait' | 'coarse' | 'none' for a fix {accuracy} (or null). */
export function quality(fix, good = goodMetres()) {
  if (!fix) return 'none';
  const acc = fix.accuracy;
  if (acc == null || !Number.isFinite(acc)) return 'wait';
  if (acc > COARSE_METRES) return 'coarse';
  if (acc > good) return 'wait';
  return 'good';
}

function fromPosition(p) {
  return {
    lat: Number(p.coords.latitude.toFixed(7)),
    lon: Number(p.coords.longitude.toFixed(7)),
    accuracy: p.coords.accuracy == null ? null : Math.round(p.coords.accuracy * 10) / 10,
    at: Date.now(),
  };
}

/**
 * Watch the position: onChange({fix, error}) on every new fix or error ('denied' |
 * 'unavailable' | 'timeout' | 'unsupported'). Returns stop().
 */
export function watch(onChange) {
  if (!navigator.geolocation) {
    onChange({ fix: null, error: 'unsupported' });
    return () => {};
  }
  let last = null;
  const id = navigator.geolocation.watchPosition(
    (p) => {
      last = fromPosition(p);
      onChange({ fix: last, error: null });
    },
    (err) => {
      const error = err.code === 1 ? 'denied' : err.code === 2 ? 'unavailable' : 'timeout';
      // A timeout with a fix in hand keeps that fix (the watch goes on).
      onChange({ fix: error === 'timeout' ? last : null, error });
    },
    { enableHighAccuracy: true, maximumAge: 10000, timeout: 30000 },
  );
  return () => navigator.geolocation.clearWatch(id);
}

/** How to turn location on, in the user's language (system switch, then the site permission). */
export function locationHelp() {
  return h('div.gps-help', { id: 'gps-help' },
    h('div', t('gps_help_title')),
    h('ol', h('li', t('gps_help_system')), h('li', t('gps_help_browser')), h('li', t('gps_help_back'))));
}

/**
 * The live line shown on a form: accuracy and quality, with data-quality for the CSS (and the
 * tests), and the how-to when location is off or refused.
 */
export function paintStatus(el, { fix, error }) {
  const q = error && error !== 'timeout' ? error : quality(fix);
  const good = goodMetres();
  const acc = fix && fix.accuracy != null ? Math.round(fix.accuracy) : null;
  el.dataset.quality = q;
  el.className = `gps gps-${q}`;
  let text;
  if (q === 'good') text = t('gps_good', { acc });
  else if (q === 'coarse') text = t('gps_coarse', { acc });
  else if (q === 'wait') text = t('gps_wait_poor', { acc: acc ?? '?', good });
  else if (q === 'denied') text = t('gps_denied');
  else if (q === 'unavailable') text = t('gps_unavailable');
  else if (q === 'unsupported') text = t('gps_unsupported');
  else text = t('gps_wait');
  const children = [h('div.gps-text', text)];
  if (q === 'wait' || q === 'coarse' || q === 'none' || error === 'timeout') children.push(h('div.small', t('gps_photo_anyway')));
  if (q === 'denied' || q === 'unavailable') children.push(locationHelp());
  el.replaceChildren(...children);
}
