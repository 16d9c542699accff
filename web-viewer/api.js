// The server's JSON API as the viewer uses it, and small text helpers. Same origin only.

/** An answer that was not 2xx: `status`, and the server's `{"error": {code, message, details}}`. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details ?? {};
  }
}

async function call(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, 'network', `服务器无响应 The server did not answer (${e.message})`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const err = body?.error ?? {};
    throw new ApiError(response.status, err.code ?? 'http_' + response.status, err.message ?? `HTTP ${response.status}`, err.details);
  }
  return body;
}

const q = (params) => new URLSearchParams(params).toString();

/**
 * The server's root as this page reached it: the page lives at `<root>viewer/`, so behind a
 * proxy's path prefix (`/citygrid/viewer/`) every call goes to `/citygrid/…`.
 */
export const ROOT = new URL('../', import.meta.url);
const at = (path) => new URL(path, ROOT).toString();

export const api = {
  health: () => call(at('health')),
  style: () => call(at('styles/citygrid.json')),
  tilejson: (layers) => call(at('tiles/' + layers)),
  locate: (lon, lat) => call(at('v1/locate?' + q({ lon, lat }))),
  grid: (code) => call(at('v1/grids/' + encodeURIComponent(code))),
  component: (code) => call(at('v1/components/' + encodeURIComponent(code))),
  counts: (bbox) => call(at('v1/components/counts?' + q({ bbox: bbox.join(',') }))),
  caseTypes: () => call(at('v1/cases/types')),
  stats: (params) => call(at('v1/stats/cases?' + q(params))),
  route: (body) => routeCase(body),
};

const TOKEN_KEY = 'citygrid.dispatcherToken';

/**
 * Routes a case. A server with dispatcher tokens configured answers 401 without one: the
 * dispatcher is asked for the token once, and it is kept for this browser tab only.
 */
async function routeCase(body, retried = false) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    return await call(at('v1/cases/route'), { method: 'POST', headers, body: JSON.stringify(body) });
  } catch (e) {
    if (retried || !(e instanceof ApiError) || (e.status !== 401 && e.status !== 403)) throw e;
    sessionStorage.removeItem(TOKEN_KEY);
    const given = window.prompt('派遣需要调度员令牌 Case routing needs a dispatcher token:');
    if (!given) throw e;
    sessionStorage.setItem(TOKEN_KEY, given.trim());
    return routeCase(body, true);
  }
}

/** What a search string is: a grid code (14 digits, or 6–15 for other levels) or a component code (16). */
export function codeKind(text) {
  const code = text.replace(/\s+/g, '');
  if (/^\d{16}$/.test(code)) return { kind: 'component', code };
  if (/^\d{6,15}$/.test(code)) return { kind: 'grid', code };
  return null;
}

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** HTML-escapes anything the server said before it goes into markup. */
export const esc = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** "name · phone" of a unit or person, or a dash. */
export function who(p) {
  if (!p) return '<span class="muted">—</span>';
  const phone = p.phone ? ` <a class="phone" href="tel:${esc(p.phone)}">${esc(p.phone)}</a>` : '';
  return `${esc(p.name)}${phone}`;
}
