// The web viewer's cold start in headless Debian Chromium: first contentful paint, the time until
// the map is first idle (every tile of the first view loaded and drawn), the bytes on the wire and
// the requests, each run in a new browser profile (empty cache). Run by
// benches/viewer_first_paint.sh, which starts the server:
//   CITYGRID_URL=http://127.0.0.1:8080 RUNS=5 node benches/viewer_first_paint.mjs
// Prints one line per run and the medians.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from '../web-viewer/node_modules/playwright-core/index.mjs';

const BASE = (process.env.CITYGRID_URL ?? '').replace(/\/+$/, '');
if (!BASE) {
  console.error('CITYGRID_URL is not set');
  process.exit(2);
}
const RUNS = Number(process.env.RUNS || 5);
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

async function once() {
  const dir = await mkdtemp(join(tmpdir(), 'citygrid-firstpaint-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await context.newPage();
    // The moment the map is first idle, taken by the page itself (performance.now(), from navigation start).
    await page.addInitScript(() => {
      let map;
      Object.defineProperty(window, 'citygridMap', {
        configurable: true,
        get: () => map,
        set: (m) => {
          map = m;
          m.once('idle', () => (window.__idleAt = performance.now()));
        },
      });
    });
    const responses = [];
    page.on('response', (r) => responses.push(r));
    await page.goto(BASE + '/viewer/');
    await page.waitForFunction(() => window.__idleAt !== undefined, null, { timeout: 120_000, polling: 50 });
    const timing = await page.evaluate(() => ({
      fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime,
      idle: window.__idleAt,
    }));
    // Bytes on the wire (headers + body as received, compressed) of every request, the map's
    // worker's tile requests included.
    let bytes = 0;
    let requests = 0;
    const by = {};
    for (const r of responses) {
      if (r.url().startsWith('data:') || r.url().startsWith('blob:')) continue;
      const s = await r.request().sizes().catch(() => null);
      const n = s ? s.responseBodySize + s.responseHeadersSize : 0;
      const kind = r.url().includes('/vendor/') ? 'maplibre' : r.url().includes('/tiles/') ? 'tiles' : r.url().includes('/fonts/') ? 'glyphs' : 'page+api';
      by[kind] = (by[kind] ?? 0) + n;
      bytes += n;
      requests++;
    }
    return { ...timing, bytes, requests, by };
  } finally {
    await context.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const runs = [];
for (let i = 0; i < RUNS; i++) {
  const r = await once();
  runs.push(r);
  const kb = (n) => (n / 1024).toFixed(1);
  console.log(
    `run ${i + 1}: first contentful paint ${r.fcp.toFixed(0)} ms, map idle ${r.idle.toFixed(0)} ms, ${kb(r.bytes)} KB in ${r.requests} requests ` +
      `(${Object.entries(r.by).map(([k, v]) => `${k} ${kb(v)} KB`).join(', ')})`,
  );
}
const m = (k) => median(runs.map((r) => r[k]));
console.log(`median of ${RUNS} cold starts: first contentful paint ${m('fcp').toFixed(0)} ms, map idle ${m('idle').toFixed(0)} ms, ` +
  `${(m('bytes') / 1024).toFixed(1)} KB in ${m('requests')} requests`);
