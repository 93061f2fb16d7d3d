// Small DOM helpers shared by the screens: build elements, show a toast, ask to confirm.
import { pick } from '../i18n.js';
import { STATE_LABELS } from '../sync_rules.js';

/** h('button.primary', {onclick}, 'text', child…): an element with classes, props and children. */
export function h(spec, props = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (props === null || typeof props !== 'object' || props instanceof Node || Array.isArray(props)) {
    children.unshift(props);
    props = {};
  }
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className += ` ${v}`;
    else if (k in el && k !== 'list' && k !== 'form') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let toastTimer = null;

/**
 * A short message above the bottom bar, never over the input being filled in (issue 12): when
 * the focused field sits under it (a field scrolled down to the keyboard), it goes under the
 * top bar instead.
 */
export function toast(message, { error = false, ms = 3000 } = {}) {
  let el = document.getElementById('toast');
  if (!el) {
    el = h('div.toast', { id: 'toast', role: 'status' });
    document.body.append(el);
  }
  el.textContent = message;
  el.classList.toggle('error', error);
  el.classList.remove('high');
  const focused = document.activeElement;
  if (focused && focused !== document.body && /^(INPUT|TEXTAREA|SELECT)$/.test(focused.tagName)) {
    const a = el.getBoundingClientRect();
    const b = focused.getBoundingClientRect();
    if (a.top < b.bottom && b.top < a.bottom) el.classList.add('high');
  }
  el.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('show'), ms);
}

/** A state badge: 草稿 / 待同步 / 已同步 / 被退回 … */
export function badge(text, kind = '') {
  return h(`span.badge${kind ? `.${kind}` : ''}`, text);
}

/** Distance between two WGS84 points in metres (haversine). */
export function distanceM(a, b) {
  const R = 6371000;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.sqrt(s));
}

/** The phone's position, or null (no permission, no fix within `timeout`). */
export function currentPosition({ timeout = 8000, maximumAge = 30000 } = {}) {
  return new Promise((resolve) => {
    if (!navigator.geolocation) return resolve(null);
    navigator.geolocation.getCurrentPosition(
      (p) =>
        resolve({
          lat: Number(p.coords.latitude.toFixed(7)),
          lon: Number(p.coords.longitude.toFixed(7)),
          accuracy: p.coords.accuracy == null ? null : Math.round(p.coords.accuracy * 10) / 10,
          at: p.timestamp,
        }),
      () => resolve(null),
      { enableHighAccuracy: true, timeout, maximumAge },
    );
  });
}

const STATE_CLASS = {
  draft: 'draft',
  queued: 'pending',
  waiting_for_photos: 'pending',
  synced: 'synced',
  approved: 'approved',
  rejected: 'rejected',
  reinspection_requested: 'rejected',
  invalid: 'invalid',
  refused: 'refused',
};

/** The badge of an outbox entry's state, with the label sync_rules gives it. */
export function stateBadge(entry) {
  const state = entry.state || 'draft';
  const label = STATE_LABELS[state] ? pick(STATE_LABELS[state]) : state;
  return h(`span.badge.${STATE_CLASS[state] || 'info'}`, { dataset: { state } }, label);
}

// Line icons as inline SVG (emoji fonts are missing on some phones).
const ICONS = {
  home: 'M3 11l9-8 9 8M5 9.5V21h5v-6h4v6h5V9.5',
  draft: 'M4 20h4L19 9l-4-4L4 16v4zM13.5 6.5l4 4',
  sync: 'M7 4v13M7 17l-3-3M7 17l3-3M17 20V7M17 7l-3 3M17 7l3 3',
  tasks: 'M9 6h11M9 12h11M9 18h11M4 6h.01M4 12h.01M4 18h.01',
  settings: 'M12 15a3 3 0 100-6 3 3 0 000 6zM19.4 15a1.7 1.7 0 00.3 1.8l.1.1a2 2 0 11-2.8 2.8l-.1-.1a1.7 1.7 0 00-1.8-.3 1.7 1.7 0 00-1 1.5V21a2 2 0 01-4 0v-.1a1.7 1.7 0 00-1.1-1.5 1.7 1.7 0 00-1.8.3l-.1.1a2 2 0 11-2.8-2.8l.1-.1a1.7 1.7 0 00.3-1.8 1.7 1.7 0 00-1.5-1H3a2 2 0 010-4h.1a1.7 1.7 0 001.5-1.1 1.7 1.7 0 00-.3-1.8l-.1-.1a2 2 0 112.8-2.8l.1.1a1.7 1.7 0 001.8.3H9a1.7 1.7 0 001-1.5V3a2 2 0 014 0v.1a1.7 1.7 0 001 1.5 1.7 1.7 0 001.8-.3l.1-.1a2 2 0 112.8 2.8l-.1.1a1.7 1.7 0 00-.3 1.8V9a1.7 1.7 0 001.5 1H21a2 2 0 010 4h-.1a1.7 1.7 0 00-1.5 1z',
  camera: 'M4 8h3l2-3h6l2 3h3v11H4zM12 17a4 4 0 100-8 4 4 0 000 8z',
  pin: 'M12 21s-7-6.5-7-12a7 7 0 0114 0c0 5.5-7 12-7 12zM12 11.5a2.5 2.5 0 100-5 2.5 2.5 0 000 5z',
  trash: 'M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13',
  plus: 'M12 5v14M5 12h14',
};

/** An inline line icon (currentColor), sized by the CSS class `.icon`. */
export function icon(name) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', ICONS[name] || '');
  svg.append(path);
  return svg;
}

/** The text size chosen in settings (issue 12): 标准 / 大 / 特大, on the root element for CSS. */
export const FONT_SIZES = ['normal', 'large', 'xlarge'];

export function applyFontSize(size) {
  document.documentElement.dataset.font = FONT_SIZES.includes(size) ? size : 'normal';
}
