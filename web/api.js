// api.js: every call of the console goes through here: the JSON API of this
// collector (same origin), with the API token from session storage as a
// Bearer token. No cookies; nothing but POSTs changes anything.

const KEY = 'tlsrptd.token';
const unauthorizedListeners = [];

export class ApiError extends Error {
  constructor(status, body, path) {
    const b = body && typeof body === 'object' ? body : {};
    super(`${path}: ${status} ${b.error || ''}${b.detail ? ': ' + b.detail : ''}`);
    this.status = status;
    this.error = b.error || (status ? `HTTP ${status}` : 'no answer');
    this.detail = b.detail || '';
    this.body = b;
    this.path = path;
    // 404 for a path the API does not have (as opposed to "no such report")
    this.endpointMissing = status === 404 && /^the API has /.test(this.detail);
  }
}

export function token() {
  try { return sessionStorage.getItem(KEY) || ''; } catch (e) { return ''; }
}

export function setToken(t) {
  try { sessionStorage.setItem(KEY, t); } catch (e) { /* storage off: this page only */ }
}

export function forgetToken() {
  try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing kept */ }
}

// Called with the ApiError of every 401, so the console can ask for the token.
export function onUnauthorized(fn) {
  unauthorizedListeners.push(fn);
}

// {a: 1, b: [2, 3], c: null} -> "a=1&b=2&b=3"
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, String(one));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

async function call(method, path, params, want) {
  const headers = {Accept: want === 'blob' ? '*/*' : 'application/json'};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let resp;
  try {
    resp = await fetch(path + query(params), {method, headers, credentials: 'omit',
      cache: 'no-store', redirect: 'error'});
  } catch (e) {
    throw new ApiError(0, {error: 'no answer', detail: 'the collector did not answer'}, path);
  }
  if (!resp.ok) {
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    const err = new ApiError(resp.status, body, path);
    err.tokenSent = Boolean(t);
    if (resp.status === 401) unauthorizedListeners.forEach((fn) => fn(err));
    throw err;
  }
  if (want === 'blob') return {blob: await resp.blob(), headers: resp.headers};
  return resp.json();
}

export function get(path, params) {
  return call('GET', path, params, 'json');
}

export function post(path, params) {
  return call('POST', path, params, 'json');
}

export function download(path) {
  return call('GET', path, null, 'blob');
}
