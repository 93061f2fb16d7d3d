// The HTTP calls of docs/PROTOCOL.md (/api/v1), and one error type for all of them.
// Every failure becomes an ApiError: `status` 0 with code `network` when the request never got
// an answer (offline, dropped, timed out), else the HTTP status and the server's error code.

const BASE = '/api/v1';
const JSON_TIMEOUT_MS = 30000;
const CHUNK_TIMEOUT_MS = 120000;

export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.body = body;
  }

  /** True when the server never answered (worth retrying later). */
  get network() {
    return this.status === 0;
  }

  /** True when the device token is no longer accepted: the user must log in again. */
  get auth() {
    return this.status === 401;
  }
}

let tokenSource = () => null;

/** Where requests get the device token from (the app's session). */
export function setTokenSource(fn) {
  tokenSource = fn;
}

async function call(method, path, { json, body, headers = {}, timeout = JSON_TIMEOUT_MS, auth = true } = {}) {
  const h = { Accept: 'application/json', ...headers };
  const token = auth ? tokenSource() : null;
  if (token) h.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    h['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  let response;
  try {
    response = await fetch(BASE + path, { method, headers: h, body, signal: controller.signal, cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, 'network', String(err && err.message ? err.message : err));
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(response.status, e.code || `http_${response.status}`, e.message || response.statusText, data);
  }
  return { data, response };
}

/** POST /auth/login → {token, token_id, device_id, user, villages}. */
export async function login(username, password, deviceId) {
  const { data } = await call('POST', '/auth/login', {
    json: { username, password, device_id: deviceId, label: navigator.userAgent.slice(0, 100) },
    auth: false,
  });
  return data;
}

export async function logout() {
  return (await call('POST', '/auth/logout')).data;
}

/** GET /sync/pull?since=cursor → one page. */
export async function pull(since, limit) {
  const q = new URLSearchParams();
  if (since) q.set('since', since);
  if (limit) q.set('limit', String(limit));
  const qs = q.toString();
  return (await call('GET', `/sync/pull${qs ? `?${qs}` : ''}`)).data;
}

/** POST /sync/push with at most PUSH_BATCH_MAX items → {results, skew_ms, clock}. */
export async function push(body) {
  return (await call('POST', '/sync/push', { json: body })).data;
}

/** GET /media/<sha256> → {sha256, complete, offset, length}. */
export async function mediaStatus(sha256) {
  return (await call('GET', `/media/${sha256}`)).data;
}

/** PATCH /media/<sha256>: the bytes from `offset` on, tus style → {complete, offset, length}. */
export async function mediaPatch(sha256, offset, length, chunk) {
  const { data } = await call('PATCH', `/media/${sha256}`, {
    body: chunk,
    headers: {
      'Content-Type': 'application/offset+octet-stream',
      'Upload-Offset': String(offset),
      'Upload-Length': String(length),
    },
    timeout: CHUNK_TIMEOUT_MS,
  });
  return data;
}

/** GET /facilities/<id>/history → {facility, submissions, conflicts}. */
export async function facilityHistory(id) {
  return (await call('GET', `/facilities/${encodeURIComponent(id)}/history`)).data;
}

/**
 * GET /media/<sha>/display/320 → a Blob, or null: the small display version of a photo the
 * server holds, for a phone that no longer has its thumbnail (fix and resend, issue 12).
 */
export async function displayBlob(sha256, size = 320) {
  const token = tokenSource();
  try {
    const response = await fetch(`${BASE}/media/${encodeURIComponent(sha256)}/display/${size}`, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    return response.ok ? await response.blob() : null;
  } catch {
    return null;
  }
}
