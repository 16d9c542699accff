// Readable at every zoom, checked in pixels (not the DOM), in headless Debian Chromium
// (playwright-core), against a running citygrid server:
//   CITYGRID_URL=http://127.0.0.1:8080 node web-viewer/e2e/zooms.test.mjs
// (web-viewer/e2e/run.sh starts a demo server and runs this after viewer.test.mjs.)
//
// At z12, z14, z16 and z18, centred on the densest place of the city (the heaviest cluster at
// z12), the map is screenshotted whole, then once per group of style layers with that group made
// transparent (opacity 0: symbols keep their placement, so nothing else moves). The pixels that
// change are the group's own, and they must be there and in the group's colours:
//   - grids: the grid outline layers, in their outline colours;
//   - labels: the grid and zone label layers, in the label text colour;
//   - components: the cluster and component layers, in the cluster / major-class colours;
//   - streets: the basemap layers (every layer of a source other than `citygrid`): the demo's own
//     street map, which `serve --demo` serves.
// At z12 and z14 (clusters) no cluster pixel is a label pixel: the label and cluster masks do not
// intersect (MapLibre's collision keeps cluster bubbles off the labels).
// Screenshots are kept in $ZOOM_SHOTS (default: a new directory under the system tmp dir; the
// path is printed).

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.CITYGRID_URL ?? '').replace(/\/+$/, '');
if (!BASE) {
  console.error('CITYGRID_URL is not set: the URL of a running citygrid server, e.g. http://127.0.0.1:8080');
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 60_000;
const ZOOMS = [12, 14, 16, 18];
const log = (...args) => console.log('[zooms e2e]', ...args);

const SHOTS = process.env.ZOOM_SHOTS || (await mkdtemp(join(tmpdir(), 'citygrid-zooms-')));
await mkdir(SHOTS, { recursive: true });

const hex = (c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
/** The plain `#rrggbb` colours in a style value (a colour, or any expression holding some). */
const coloursIn = (v) => (typeof v === 'string' ? (/^#[0-9a-f]{6}$/i.test(v) ? [hex(v)] : []) : Array.isArray(v) ? v.flatMap(coloursIn) : []);

/** Opacity paint properties of a layer type: setting them to 0 hides the layer, keeping its placement. */
const OPACITY = {
  line: ['line-opacity'],
  fill: ['fill-opacity'],
  circle: ['circle-opacity', 'circle-stroke-opacity'],
  symbol: ['icon-opacity', 'text-opacity'],
  raster: ['raster-opacity'],
  'fill-extrusion': ['fill-extrusion-opacity'],
  heatmap: ['heatmap-opacity'],
  hillshade: [],
  background: ['background-opacity'],
};

const waitIdle = (page) =>
  page.evaluate(
    () =>
      new Promise((resolve) => {
        const map = window.citygridMap;
        map.once('idle', resolve);
        map.triggerRepaint();
      }),
  );

/** Screenshot of the map canvas only (no panel, no controls' DOM around it). */
async function shot(page, name) {
  const box = await page.locator('#map canvas.maplibregl-canvas').boundingBox();
  const png = await page.screenshot({ clip: box, animations: 'disabled' });
  await writeFile(join(SHOTS, `${name}.png`), png);
  return png.toString('base64');
}

/** Makes the layers transparent (or restores them), waits until the map is drawn again. */
async function setHidden(page, ids, hidden) {
  await page.evaluate(
    ({ ids, hidden, OPACITY }) => {
      const map = window.citygridMap;
      window.__saved ??= {};
      for (const id of ids) {
        const layer = map.getLayer(id);
        if (!layer) continue;
        for (const prop of OPACITY[layer.type] ?? []) {
          const key = `${id}|${prop}`;
          if (hidden) {
            window.__saved[key] = map.getPaintProperty(id, prop);
            map.setPaintProperty(id, prop, 0, { validate: false });
          } else {
            map.setPaintProperty(id, prop, window.__saved[key]);
          }
        }
      }
    },
    { ids, hidden, OPACITY },
  );
  await waitIdle(page);
}

const userDataDir = await mkdtemp(join(tmpdir(), 'citygrid-zooms-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let failed = false;
const errors = [];
try {
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text()));
  // The pixel analysis runs in a page of its own (decoding PNGs with the browser's decoder).
  const lab = await context.newPage();
  await lab.goto('about:blank');

  await page.goto(BASE + '/viewer/');
  await page.waitForFunction(
    () => {
      const map = window.citygridMap;
      return map?.loaded() && map.areTilesLoaded() && map.queryRenderedFeatures().some((f) => f.sourceLayer === 'grids');
    },
    null,
    { timeout: TIMEOUT, polling: 250 },
  );
  // No symbol fade-in between the shots.
  await page.evaluate(() => {
    window.citygridMap._fadeDuration = 0;
  });
  // The served style (the page adds sources and layers of its own: highlights, hot spots).
  const style = await (await fetch(BASE + '/styles/citygrid.json')).json();
  const layersWhere = (pred) => style.layers.filter(pred).map((l) => l.id);
  const groups = {
    grids: {
      ids: layersWhere((l) => l['source-layer'] === 'grids' && l.type === 'line'),
      colours: style.layers.filter((l) => l['source-layer'] === 'grids' && l.type === 'line').flatMap((l) => coloursIn(l.paint?.['line-color'])),
      tolerance: 40,
    },
    labels: {
      ids: layersWhere((l) => l.type === 'symbol' && (l['source-layer'] === 'grids' || l['source-layer'] === 'zones')),
      colours: style.layers.filter((l) => l.type === 'symbol' && l['source-layer'] === 'grids').flatMap((l) => coloursIn(l.paint?.['text-color'])),
      tolerance: 60,
    },
    components: {
      ids: layersWhere((l) => l['source-layer'] === 'components'),
      colours: style.layers
        .filter((l) => l['source-layer'] === 'components')
        .flatMap((l) => [...coloursIn(l.paint?.['icon-color']), ...coloursIn(l.paint?.['circle-color'])]),
      tolerance: 60,
    },
  };
  const basemapSources = Object.keys(style.sources).filter((s) => s !== 'citygrid');
  // `serve --demo` draws the demo's own street map under the grids: the first screen has streets.
  assert.ok(basemapSources.length > 0, 'the demo style has a basemap source (the demo street map)');
  groups.streets = { ids: layersWhere((l) => l.source && basemapSources.includes(l.source)), colours: [], tolerance: 0 };
  const clusterIds = layersWhere((l) => l['source-layer'] === 'components' && l.filter && JSON.stringify(l.filter).includes('point_count') && !JSON.stringify(l.filter).includes('"!"'));
  for (const [name, g] of Object.entries(groups)) assert.ok(g.ids.length > 0, `the style has ${name} layers`);
  assert.ok(clusterIds.length > 0, 'the style has a cluster layer');

  // The densest place: the heaviest cluster drawn at z12 over the city.
  const { center } = await (await fetch(BASE + '/health')).json();
  await page.evaluate(([lon, lat]) => window.citygridMap.jumpTo({ center: [lon, lat], zoom: 12 }), center);
  await waitIdle(page);
  const dense = await page.evaluate((ids) => {
    const fs = window.citygridMap.queryRenderedFeatures({ layers: ids });
    fs.sort((a, b) => b.properties.point_count - a.properties.point_count);
    return fs[0] && { at: fs[0].geometry.coordinates, n: fs[0].properties.point_count };
  }, clusterIds);
  assert.ok(dense, 'clusters drawn at z12 around the centre');
  log(`densest place: ${dense.at.map((v) => v.toFixed(5)).join(',')} (a z12 cluster of ${dense.n}); screenshots in ${SHOTS}`);

  for (const z of ZOOMS) {
    await page.evaluate(({ at, z }) => window.citygridMap.jumpTo({ center: at, zoom: z }), { at: dense.at, z });
    await waitIdle(page);
    const full = await shot(page, `z${z}`);
    const without = {};
    for (const [name, g] of Object.entries(groups)) {
      await setHidden(page, g.ids, true);
      without[name] = await shot(page, `z${z}-without-${name}`);
      await setHidden(page, g.ids, false);
    }
    if (z < 16) {
      await setHidden(page, clusterIds, true);
      without.clusters = await shot(page, `z${z}-without-clusters`);
      await setHidden(page, clusterIds, false);
    }
    const result = await lab.evaluate(
      async ({ full, without, groups }) => {
        const pixels = async (b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
          const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
          const ctx = canvas.getContext('2d');
          ctx.drawImage(bitmap, 0, 0);
          return ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
        };
        const a = await pixels(full);
        const masks = {};
        const out = { total: a.length / 4 };
        for (const [name, b64] of Object.entries(without)) {
          const b = await pixels(b64);
          const mask = new Uint8Array(a.length / 4);
          const g = groups[name];
          let changed = 0;
          let inColour = 0;
          for (let i = 0, p = 0; i < a.length; i += 4, p++) {
            const d = Math.max(Math.abs(a[i] - b[i]), Math.abs(a[i + 1] - b[i + 1]), Math.abs(a[i + 2] - b[i + 2]));
            if (d <= 16) continue;
            mask[p] = 1;
            changed++;
            if (g?.colours.some((c) => Math.hypot(a[i] - c[0], a[i + 1] - c[1], a[i + 2] - c[2]) <= g.tolerance)) inColour++;
          }
          masks[name] = mask;
          out[name] = { changed, inColour };
        }
        if (masks.clusters) {
          let both = 0;
          for (let p = 0; p < masks.clusters.length; p++) both += masks.clusters[p] & masks.labels[p];
          out.overlap = both;
        }
        return out;
      },
      { full, without, groups },
    );
    const summary = Object.entries(result)
      .filter(([k]) => k !== 'total')
      .map(([k, v]) => `${k} ${typeof v === 'number' ? v : `${v.changed} px (${v.inColour} in colour)`}`)
      .join(', ');
    log(`z${z}: ${summary}`);
    assert.ok(result.grids.changed > 200 && result.grids.inColour > 50, `z${z}: grid outlines drawn in their colours: ${JSON.stringify(result.grids)}`);
    assert.ok(result.labels.changed > 100 && result.labels.inColour > 20, `z${z}: labels drawn in the label colour: ${JSON.stringify(result.labels)}`);
    assert.ok(
      result.components.changed > 50 && result.components.inColour > 20,
      `z${z}: components or clusters drawn in their colours: ${JSON.stringify(result.components)}`,
    );
    if (result.streets) assert.ok(result.streets.changed > 500, `z${z}: the basemap's streets drawn: ${JSON.stringify(result.streets)}`);
    if (result.clusters) {
      assert.ok(result.clusters.changed > 50, `z${z}: clusters drawn: ${JSON.stringify(result.clusters)}`);
      assert.equal(result.overlap, 0, `z${z}: no pixel is both a cluster's and a label's (${result.overlap} are)`);
    }
  }
  log(`ok: grids, labels${groups.streets ? ', streets' : ''} and components visible at z${ZOOMS.join(', z')}; clusters off the labels at z12 and z14`);
  assert.deepEqual(errors, [], 'no errors in the page');
} catch (e) {
  failed = true;
  console.error('[zooms e2e] FAILED:', e);
  if (errors.length) console.error('[zooms e2e] page errors:', errors);
} finally {
  await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}
log(`screenshots: ${SHOTS}`);
process.exit(failed ? 1 : 0);
