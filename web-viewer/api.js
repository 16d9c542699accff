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
  staff: (params) => call(at('v1/staff?' + q(params)), { headers: staffHeaders() }),
  track: (id, date) => call(at(`v1/staff/${encodeURIComponent(id)}/track?` + q({ date })), { headers: staffHeaders() }),
  patrol: (date, level) => call(at('v1/stats/patrol?' + q({ date, level, format: 'geojson' })), { headers: staffHeaders() }),
};

// ---------------------------------------------------------------------------------------------
// Field staff: their positions are personal data, read with a staff token only. The token is
// kept in this browser tab's sessionStorage, sent in the Authorization header, never in a URL.

const STAFF_KEY = 'citygrid.staffToken';

export const staffToken = {
  get: () => sessionStorage.getItem(STAFF_KEY),
  set: (token) => sessionStorage.setItem(STAFF_KEY, token.trim()),
  clear: () => sessionStorage.removeItem(STAFF_KEY),
};

function staffHeaders() {
  const token = staffToken.get();
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * Reads `GET /v1/staff/events?…` (Server-Sent Events) with fetch(), which, unlike EventSource,
 * can send the token in a header: calls `onEvent(name, data)` for each event until the stream
 * ends (resolves) or `signal` aborts it. A refusal (401, 403…) throws an ApiError.
 */
export async function staffEvents(params, onEvent, signal) {
  let response;
  try {
    response = await fetch(at('v1/staff/events?' + q(params)), { headers: { ...staffHeaders(), accept: 'text/event-stream' }, signal, cache: 'no-store' });
  } catch (e) {
    if (signal?.aborted) return;
    throw new ApiError(0, 'network', `服务器无响应 The server did not answer (${e.message})`);
  }
  if (!response.ok) {
    const err = (await response.json().catch(() => null))?.error ?? {};
    throw new ApiError(response.status, err.code ?? 'http_' + response.status, err.message ?? `HTTP ${response.status}`, err.details);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (!data.length) continue; // a keep-alive comment
        let parsed;
        try {
          parsed = JSON.parse(data.join('\n'));
        } catch {
          continue;
        }
        onEvent(name, parsed);
      }
    }
  } catch (e) {
    if (!signal?.aborted) throw new ApiError(0, 'network', `连接中断 The connection dropped (${e.message})`);
  } finally {
    reader.releaseLock?.();
  }
}

const TOKEN_KEY = 'citygrid.dispatcherToken';

/**
 * Routes a case. A server with dispatcher tokens configured answers 401 without one: the
 * dispatcher is asked for the token once, and it is kept for this browser tab only.
 */
async function routeCase(body, retried = false) {
  // A staff token may route where routing is open, and lets the answer suggest inspectors.
  const token = sessionStorage.getItem(TOKEN_KEY) ?? staffToken.get();
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    return await call(at('v1/cases/route'), { method: 'POST', headers, body: JSON.stringify(body) });
  } catch (e) {
    if (e instanceof ApiError && e.details?.parameter === 'suggest_staff' && body.suggest_staff) {
      // The token may route but not see staff: route without the suggestions.
      const { suggest_staff: _, ...plain } = body;
      return routeCase(plain, retried);
    }
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
