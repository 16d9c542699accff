// Field staff on the dispatch map: the live positions of inspectors and grid workers (a staff
// token, kept in this tab's sessionStorage), coloured by status, updated over Server-Sent Events;
// a person's track of the day on demand; patrol coverage of the grids as a layer; the inspectors
// the case router suggests, with a line to the case.

import { ApiError, api, esc, staffEvents, staffToken } from './api.js';

/** Colour and names of each status, and of a position older than the server's stale limit. */
export const STAFF_STATUS = {
  available: ['#2b8a3e', '在岗可派', 'available'],
  busy: ['#e8590c', '忙碌', 'busy'],
  off_duty: ['#7048e8', '离岗', 'off duty'],
  stale: ['#adb5bd', '位置过期', 'stale position'],
};
const ROLE = { inspector: ['监督员', 'inspector'], grid_worker: ['网格员', 'grid worker'] };
/** Coverage 0 (unvisited) … 1 (walked all day): red, amber, green. */
const COVERAGE_STOPS = [[0, '#e03131'], [0.5, '#fab005'], [1, '#2f9e44']];
/** How many people the first read asks for (the server's largest page). */
const LIST_LIMIT = 10_000;
const SUGGESTED = '#7b3fe4';

const $ = (id) => document.getElementById(id);
const en = (text) => `<span class="en">${esc(text)}</span>`;
const empty = () => ({ type: 'FeatureCollection', features: [] });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Today in China time (the server's day of tracks and patrol statistics), YYYY-MM-DD. */
export const chinaToday = () => new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);

/** A 404 of the router itself (no such endpoint on this server), not of a resource. */
const missingEndpoint = (e) => e.status === 404 && e.code === 'not_found' && !!e.details?.path;

const clock = (time) => new Date(time).toLocaleTimeString('zh-CN', { hour12: false });

function ago(time) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  return s < 90 ? `${s} 秒前 ${en(`${s} s ago`)}` : `${Math.round(s / 60)} 分钟前 ${en(`${Math.round(s / 60)} min ago`)}`;
}

const roleName = (role) => {
  const [zh, english] = ROLE[role] ?? [role, ''];
  return `${esc(zh)} ${en(english)}`;
};

/** The inspectors `suggested_staff` of a routed case names, for the answer panel. */
export function suggestedHtml(list) {
  if (!list?.length) return `<p class="hint">附近暂无可派监督员。${en('No available inspector with a fresh position nearby.')}</p>`;
  return `<ol class="suggested">${list
    .map((p, i) => `<li data-suggested="${esc(p.id)}"><span class="rank">${i + 1}</span>
      <span class="sname">${esc(p.name)}</span> <code>${esc(p.id)}</code>
      <span class="dist">${Math.round(p.distance_m).toLocaleString('zh-CN')} m</span>
      <span class="muted">${esc(p.unit)}</span></li>`)
    .join('')}</ol>`;
}

/**
 * The staff panel and layers. `show(lngLat, load)` opens a popup; `beforeId` is the layer the
 * coverage fill goes under (the grid outlines stay readable); `textFont` the style's font stack
 * (its glyphs come from the server); `levels` the grid levels of /health.
 */
export function setupStaff(map, { show, beforeId, textFont, levels }) {
  const people = new Map(); // id → the person as the server last said
  let staleAfter = 120;
  let abort = null;

  // --- layers ----------------------------------------------------------------------------------
  map.addSource('coverage', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'coverage-fill', type: 'fill', source: 'coverage', layout: { visibility: 'none' },
    paint: {
      'fill-color': ['interpolate', ['linear'], ['coalesce', ['get', 'coverage'], 0], ...COVERAGE_STOPS.flat()],
      'fill-opacity': 0.55,
      'fill-outline-color': 'rgba(40, 40, 40, 0.35)',
    },
  }, beforeId);
  map.addSource('staff-track', { type: 'geojson', data: empty() });
  map.addLayer({ id: 'staff-track-line', type: 'line', source: 'staff-track',
    layout: { 'line-join': 'round', 'line-cap': 'round' }, paint: { 'line-color': '#1971c2', 'line-width': 3, 'line-opacity': 0.85 } });
  map.addSource('suggested', { type: 'geojson', data: empty() });
  map.addLayer({ id: 'suggested-lines', type: 'line', source: 'suggested', filter: ['==', ['geometry-type'], 'LineString'],
    paint: { 'line-color': SUGGESTED, 'line-width': 2, 'line-dasharray': [2, 1.5] } });
  map.addSource('staff', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'staff-points', type: 'circle', source: 'staff',
    paint: {
      'circle-radius': ['interpolate', ['linear'], ['zoom'], 10, 4, 16, 7, 19, 9],
      'circle-color': ['match', ['get', 'shown'], ...Object.entries(STAFF_STATUS).flatMap(([k, [c]]) => [k, c]), '#adb5bd'],
      'circle-stroke-color': '#fff',
      'circle-stroke-width': 1.5,
    },
  });
  map.addLayer({ id: 'suggested-points', type: 'circle', source: 'suggested', filter: ['==', ['geometry-type'], 'Point'],
    paint: { 'circle-radius': 11, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': SUGGESTED, 'circle-stroke-width': 3 } });
  if (textFont) {
    map.addLayer({
      id: 'staff-labels', type: 'symbol', source: 'staff', minzoom: 16,
      layout: { 'text-field': ['get', 'name'], 'text-font': textFont, 'text-size': 12, 'text-offset': [0, 1], 'text-anchor': 'top', 'text-optional': true },
      paint: { 'text-color': '#1f2933', 'text-halo-color': '#fff', 'text-halo-width': 1.5 },
    });
    map.addLayer({
      id: 'suggested-rank', type: 'symbol', source: 'suggested', filter: ['==', ['geometry-type'], 'Point'],
      layout: { 'text-field': ['to-string', ['get', 'rank']], 'text-font': textFont, 'text-size': 12, 'text-offset': [0, -1.6], 'text-allow-overlap': true },
      paint: { 'text-color': SUGGESTED, 'text-halo-color': '#fff', 'text-halo-width': 2 },
    });
  }

  // --- live positions --------------------------------------------------------------------------
  const shownStatus = (p) => (Date.now() - Date.parse(p.time) > staleAfter * 1000 ? 'stale' : p.status);
  let drawPending = false;
  const draw = () => {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      const counts = {};
      const features = [...people.values()].map((p) => {
        const shown = shownStatus(p);
        counts[shown] = (counts[shown] ?? 0) + 1;
        return { type: 'Feature', properties: { id: p.id, name: p.name, shown }, geometry: { type: 'Point', coordinates: [p.lon, p.lat] } };
      });
      map.getSource('staff').setData({ type: 'FeatureCollection', features });
      for (const el of document.querySelectorAll('#staff-legend [data-staff-count]')) {
        el.textContent = (counts[el.dataset.staffCount] ?? 0).toLocaleString('zh-CN');
      }
    });
  };
  /** Keeps the newer of what is held and `p` (a list read and the stream may cross). */
  const upsert = (p) => {
    const held = people.get(p.id);
    if (!held || Date.parse(p.time) >= Date.parse(held.time)) people.set(p.id, p);
  };
  setInterval(draw, 15_000); // positions turn stale as time passes

  const status = (html) => ($('staff-status').innerHTML = html);
  $('staff-legend').innerHTML = Object.entries(STAFF_STATUS)
    .map(([key, [colour, zh, english]]) => `<li><span class="swatch dot" style="background:${colour}" aria-hidden="true"></span>
      ${zh} ${en(english)} <span class="count" data-staff-count="${key}">0</span></li>`)
    .join('');

  const signedIn = (on) => {
    $('staff-login').hidden = on;
    $('staff-on').hidden = !on;
  };

  async function live(signal) {
    let backoff = 1000;
    while (!signal.aborted) {
      try {
        await staffEvents({ types: 'positions' }, (name, data) => {
          if (name === 'ready') {
            staleAfter = data.stale_after_s ?? staleAfter;
            // Subscribed first, then read: nothing that moves in between is missed.
            api.staff({ limit: LIST_LIMIT }).then((page) => {
              for (const p of page.staff) upsert(p);
              draw();
              backoff = 1000;
              status(`${people.size.toLocaleString('zh-CN')} 人 · 实时更新 ${en(`${people.size} people, live`)}${page.truncated ? ` · ${en(`first ${LIST_LIMIT} only`)}` : ''}`);
            }, (e) => status(`人员读取失败 ${en('Could not read the staff')}: ${esc(e.message)}`));
          } else if (name === 'positions') {
            for (const p of data.people) upsert(p);
            draw();
          }
        }, signal);
        if (signal.aborted) return;
        status(`连接已断开，正在重连… ${en('Disconnected, reconnecting…')}`);
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
          stop();
          staffToken.clear();
          signedIn(false);
          $('staff-login-status').innerHTML = `令牌无效，不能查看人员位置。${en('This token may not read staff positions.')}`;
          return;
        }
        status(`${esc(e.message)} · 正在重连… ${en('reconnecting…')}`);
      }
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 30_000);
    }
  }

  function start() {
    stop();
    abort = new AbortController();
    signedIn(true);
    status(`正在连接… ${en('Connecting…')}`);
    live(abort.signal);
  }

  function stop() {
    abort?.abort();
    abort = null;
    people.clear();
    draw();
    map.getSource('staff-track').setData(empty());
    map.getSource('suggested').setData(empty());
  }

  $('staff-login').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('staff-token').value.trim();
    if (!token) return;
    $('staff-token').value = '';
    $('staff-login-status').innerHTML = '';
    staffToken.set(token);
    start();
  });
  $('staff-logout').addEventListener('click', () => {
    stop();
    staffToken.clear();
    signedIn(false);
  });
  $('staff-track-clear').addEventListener('click', () => {
    map.getSource('staff-track').setData(empty());
    $('staff-track-clear').hidden = true;
  });
  if (staffToken.get()) start();
  else signedIn(false);

  // --- popup and track -------------------------------------------------------------------------
  async function personHtml(id) {
    const p = people.get(id);
    if (!p) return `<div class="pop"><p class="muted">此人已不在图上。${en('No longer on the map.')}</p></div>`;
    const [colour, zh, english] = STAFF_STATUS[shownStatus(p)] ?? STAFF_STATUS.stale;
    const grid = p.grid ? await api.grid(p.grid).catch(() => null) : null;
    const accuracy = p.accuracy_m != null ? ` · ±${Math.round(p.accuracy_m)} m` : '';
    return `<div class="pop" data-staff="${esc(p.id)}">
      <h3>${roleName(p.role)} <code class="big">${esc(p.id)}</code></h3>
      <p class="name">${esc(p.name)}</p>
      <dl>
        <dt>单位 ${en('Unit')}</dt><dd>${p.unit ? esc(p.unit) : '<span class="muted">—</span>'}</dd>
        <dt>状态 ${en('Status')}</dt><dd><span class="swatch dot" style="background:${colour}" aria-hidden="true"></span> ${zh} ${en(english)}</dd>
        <dt>定位时间 ${en('Position time')}</dt><dd>${esc(clock(p.time))} · ${ago(p.time)}${accuracy}</dd>
        <dt>所在网格 ${en('Current grid')}</dt><dd>${p.grid ? `${grid ? esc(grid.name) + ' ' : ''}<code>${esc(p.grid)}</code>` : `<span class="muted">网格外 ${en('outside the grids')}</span>`}</dd>
      </dl>
      <button type="button" class="track-button" data-track="${esc(p.id)}">轨迹 ${en('Track of today')}</button>
      <p class="hint track-status" role="status" aria-live="polite"></p></div>`;
  }

  async function drawTrack(id, out) {
    const date = chinaToday();
    out.textContent = '…';
    let track;
    try {
      track = await api.track(id, date);
    } catch (e) {
      out.innerHTML = missingEndpoint(e)
        ? `此服务器未提供轨迹。${en('Tracks are not available on this server.')}`
        : e.status === 404
          ? `${date} 无轨迹。${en(`No track on ${date}.`)}`
          : `轨迹读取失败 ${en('Could not read the track')}: ${esc(e.message)}`;
      return;
    }
    // A LineString of the day's positions; a Point for a single one; null for none.
    const g = track.geometry;
    const coords = g?.type === 'Point' ? [g.coordinates] : (g?.coordinates ?? []);
    map.getSource('staff-track').setData(g ? track : empty());
    $('staff-track-clear').hidden = false;
    const times = track.properties?.times ?? [];
    if (!coords.length) {
      out.innerHTML = `${date} 无轨迹点。${en(`No track points on ${date}.`)}`;
      return;
    }
    const span = times.length ? ` · ${esc(clock(times[0]))}–${esc(clock(times[times.length - 1]))}` : '';
    out.innerHTML = `${date} ${coords.length.toLocaleString('zh-CN')} 个点 ${en(`${coords.length} points`)}${span}`;
    const lons = coords.map((c) => c[0]);
    const lats = coords.map((c) => c[1]);
    map.fitBounds([[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]], { padding: 80, maxZoom: 17 });
  }

  document.addEventListener('click', (e) => {
    const button = e.target.closest?.('[data-track]');
    if (!button) return;
    drawTrack(button.dataset.track, button.parentElement.querySelector('.track-status'));
  });

  // --- patrol coverage -------------------------------------------------------------------------
  const coverageOn = $('coverage-on');
  const coverageDate = $('coverage-date');
  const coverageLevel = $('coverage-level');
  const coverageStatus = $('coverage-status');
  coverageDate.value = chinaToday();
  coverageLevel.innerHTML = levels
    .map((l, i) => `<option value="${i + 1}"${i + 1 === levels.length ? ' selected' : ''}>${esc(l.name)} ${esc(l.name_en)}</option>`)
    .join('');
  $('coverage-legend').innerHTML = `<li><span class="swatch ramp" style="background:linear-gradient(90deg, ${COVERAGE_STOPS.map(([, c]) => c).join(', ')})" aria-hidden="true"></span>
    <span>0% 未巡查 ${en('unvisited')}</span><span class="count">100% ${en('covered')}</span></li>`;
  let asked = 0;
  const refreshCoverage = async () => {
    const on = coverageOn.checked;
    map.setLayoutProperty('coverage-fill', 'visibility', on ? 'visible' : 'none');
    coverageDate.disabled = coverageLevel.disabled = !on;
    $('coverage-legend').hidden = !on;
    if (!on) {
      coverageStatus.textContent = '';
      return;
    }
    const ticket = ++asked;
    coverageStatus.textContent = '正在统计… Computing…';
    let fc;
    try {
      fc = await api.patrol(coverageDate.value || chinaToday(), coverageLevel.value);
    } catch (e) {
      if (ticket !== asked) return;
      map.getSource('coverage').setData(empty());
      coverageStatus.innerHTML = missingEndpoint(e)
        ? `此服务器未提供巡查统计。${en('Patrol statistics are not available on this server.')}`
        : e.status === 401 || e.status === 403
          ? `需要人员令牌。${en('Needs a staff token: enter it above.')}`
          : `巡查覆盖读取失败 ${en('Could not read the patrol coverage')}: ${esc(e.message)}`;
      return;
    }
    if (ticket !== asked) return;
    map.getSource('coverage').setData(fc);
    const n = fc.features?.length ?? 0;
    const mean = n ? fc.features.reduce((s, f) => s + (f.properties?.coverage ?? 0), 0) / n : 0;
    const unvisited = (fc.features ?? []).filter((f) => !(f.properties?.coverage > 0)).length;
    coverageStatus.innerHTML = `${n} 个网格，平均覆盖 ${Math.round(mean * 100)}%，${unvisited} 个未巡查。${en(`${n} grids, mean coverage ${Math.round(mean * 100)}%, ${unvisited} unvisited.`)}`;
  };
  for (const el of [coverageOn, coverageDate, coverageLevel]) el.addEventListener('change', refreshCoverage);
  coverageDate.disabled = coverageLevel.disabled = true;
  $('coverage-legend').hidden = true;

  const near = (p, r) => [[p.x - r, p.y - r], [p.x + r, p.y + r]];
  return {
    /** Opens the popup of the person at a map click, if there is one (then `true`). */
    click(e) {
      const distance = (f) => map.project(f.geometry.coordinates).dist(e.point);
      const [hit] = map.queryRenderedFeatures(near(e.point, 8), { layers: ['staff-points'] }).sort((a, b) => distance(a) - distance(b));
      if (!hit) return false;
      const [lng, lat] = hit.geometry.coordinates;
      show({ lng, lat }, () => personHtml(hit.properties.id));
      return true;
    },
    /** Draws the suggested inspectors of a routed case at `lngLat`, a line from the case to each (none: clears). */
    showSuggested(lngLat, list) {
      const features = [];
      (list ?? []).forEach((p, i) => {
        features.push({ type: 'Feature', properties: { id: p.id, rank: i + 1 }, geometry: { type: 'Point', coordinates: [p.lon, p.lat] } });
        features.push({ type: 'Feature', properties: { id: p.id }, geometry: { type: 'LineString', coordinates: [[lngLat.lng, lngLat.lat], [p.lon, p.lat]] } });
      });
      map.getSource('suggested').setData({ type: 'FeatureCollection', features });
    },
    layers: ['staff-points'],
  };
}
