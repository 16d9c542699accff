// citygrid dispatch-centre viewer: the server's own style and tiles in MapLibre GL JS, the
// lookup API on click and search, and case routing. Plain ES modules, no build step; MapLibre
// comes from the server (web-viewer/vendor/maplibre-gl, compiled into the binary), never a CDN.

import { ROOT, api, codeKind, esc, staffToken, who } from './api.js';
import { setupStaff, suggestedHtml } from './staff.js';

const MAPLIBRE = './vendor/maplibre-gl/maplibre-gl.mjs';
/** Major component classes (data/component_classes.csv); colours come from the style. */
const MAJORS = [
  ['01', '公用设施', 'public utilities'],
  ['02', '道路交通', 'roads and traffic'],
  ['03', '市容环境', 'city appearance'],
  ['04', '园林绿化', 'landscaping'],
  ['05', '房屋土地', 'buildings and land'],
  ['06', '其他设施', 'other facilities'],
  ['21', '扩展部件', 'local extension'],
];
/** Names of the usual zone layers; any other layer is shown by its own name. */
const ZONE_LAYERS = {
  roads: ['道路', 'roads'],
  rivers: ['河道', 'rivers'],
  plazas: ['广场', 'plazas'],
};
/** Local fonts for Chinese labels (MapLibre draws CJK glyphs from these; the rest from the server's glyphs). */
const CJK_FONTS = '"Microsoft YaHei", "PingFang SC", "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", sans-serif';
const NONE = '\u0000'; // a code no grid has: highlight filters start empty

const $ = (id) => document.getElementById(id);
const en = (text) => `<span class="en">${esc(text)}</span>`;

function fatal(html) {
  const box = $('fatal');
  box.innerHTML = html;
  box.hidden = false;
}

/** MapLibre from this server (compiled into it), or a visible message if it cannot load. */
async function loadMapLibre() {
  try {
    return await import(MAPLIBRE);
  } catch (e) {
    $('route-status').textContent = '';
    fatal(`<h2>地图组件加载失败 ${en('The map library did not load')}</h2>
      <p>${en('MapLibre GL JS is served by this server at')} <code>${esc(MAPLIBRE.slice(2))}</code>.
      请刷新本页；如仍失败，请检查代理是否转发该路径。${en('Reload the page; if it fails again, check that a proxy forwards that path.')}</p>
      <p class="hint">${esc(e.message)}</p>`);
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Style: the server's own, adapted for offline use and for the toggles.

const state = {
  levels: new Set(),
  majors: new Set(MAJORS.map(([code]) => code)),
  gridLayers: [], // {id, filter}
  hiddenZones: new Set(), // zone layers switched off (`roads`, …); a layer imported later shows
  zoneLayers: [], // style layers drawing zones: {id, filter}
  pointLayers: [], // single components: {id, filter}
  clusterLayers: [], // {id, filter, layout, paint}
  picking: false,
  caseTypes: [],
};

/**
 * The served style's glyphs come from this server too (`/fonts/…`: Latin and digits from its
 * built-in font, other scripts from its font directory); CJK ideographs are drawn from the
 * browser's fonts (`localIdeographFontFamily`), so they are never downloaded. Notes the grid,
 * point and cluster layers and their own filters and properties, which the toggles extend.
 */
function offlineStyle(style) {
  for (const layer of style.layers) {
    const copy = { id: layer.id, filter: layer.filter, layout: layer.layout, paint: layer.paint };
    if (layer['source-layer'] === 'grids') state.gridLayers.push(copy);
    else if (layer['source-layer'] === 'zones') state.zoneLayers.push(copy);
    else if (layer['source-layer'] === 'components') {
      (JSON.stringify(layer.filter).includes('"!"') ? state.pointLayers : state.clusterLayers).push(copy);
    }
  }
  return style;
}

/** Colour per major class from the style's `components` circle-color match. */
function majorColours(style) {
  const colour = {};
  for (const layer of style.layers) {
    const expr = layer.paint?.['circle-color'];
    if (layer['source-layer'] !== 'components' || !Array.isArray(expr) || expr[0] !== 'match') continue;
    for (let i = 2; i + 1 < expr.length; i += 2) colour[expr[i]] = expr[i + 1];
  }
  return colour;
}

/** Colour per zone layer from the style's zone outline `match` on `layer`, and its fallback. */
function zoneColours(style) {
  const colour = { '': '#0b7285' };
  for (const layer of style.layers) {
    const expr = layer.paint?.['line-color'];
    if (layer['source-layer'] !== 'zones' || !Array.isArray(expr)) continue;
    if (expr[0] !== 'match') {
      colour[''] = expr;
      continue;
    }
    for (let i = 2; i + 1 < expr.length; i += 2) colour[expr[i]] = expr[i + 1];
    colour[''] = expr[expr.length - 1];
  }
  return colour;
}

const zoneColour = (colours, layer) => colours[layer] ?? colours[''];
const zoneLayerName = (layer) => {
  const [zh, english] = ZONE_LAYERS[layer] ?? [layer, ''];
  return english ? `${esc(zh)} ${en(english)}` : esc(zh);
};

/** Line colour and dash of each grid level's outline layer. */
function levelLines(style) {
  const lines = {};
  for (const layer of style.layers) {
    if (layer['source-layer'] !== 'grids' || layer.type !== 'line') continue;
    const m = JSON.stringify(layer.filter).match(/\["==",\["get","level"\],(\d+)\]/);
    if (m) lines[m[1]] = { colour: layer.paint['line-color'], dashed: !!layer.paint['line-dasharray'] };
  }
  return lines;
}

/** Replaces `["get", "point_count"]` in an expression by `sum`. */
function withCount(value, sum) {
  if (!Array.isArray(value)) return value;
  if (value.length === 2 && value[0] === 'get' && value[1] === 'point_count') return sum;
  return value.map((v) => withCount(v, sum));
}

function applyFilters(map) {
  const levels = ['in', ['get', 'level'], ['literal', [...state.levels].map(Number)]];
  for (const l of state.gridLayers) map.setFilter(l.id, l.filter ? ['all', l.filter, levels] : levels);
  const zones = ['!', ['in', ['get', 'layer'], ['literal', [...state.hiddenZones]]]];
  for (const l of state.zoneLayers) map.setFilter(l.id, l.filter ? ['all', l.filter, zones] : zones);
  const majors = ['in', ['get', 'major'], ['literal', [...state.majors]]];
  for (const l of state.pointLayers) map.setFilter(l.id, l.filter ? ['all', l.filter, majors] : majors);
  // A cluster counts only the classes shown (the tiles carry count_XX per major class).
  const all = state.majors.size === MAJORS.length;
  const sum = ['+', 0, 0, ...[...state.majors].map((m) => ['coalesce', ['get', `count_${m}`], 0])];
  for (const l of state.clusterLayers) {
    map.setFilter(l.id, all ? l.filter : ['all', l.filter, ['>', sum, 0]]);
    for (const [kind, props] of [['layout', l.layout], ['paint', l.paint]]) {
      for (const [name, value] of Object.entries(props ?? {})) {
        if (!JSON.stringify(value).includes('point_count')) continue;
        const v = all ? value : withCount(value, sum);
        if (kind === 'layout') map.setLayoutProperty(l.id, name, v);
        else map.setPaintProperty(l.id, name, v);
      }
    }
  }
}

/** Highlight layers: selected grid (amber), routed area (violet), marks for points. */
function addHighlights(map) {
  const before = state.clusterLayers[0]?.id;
  const polygon = (code) => ['all', ['==', ['geometry-type'], 'Polygon'], ['==', ['get', 'code'], code]];
  const grid = { source: 'citygrid', 'source-layer': 'grids', filter: polygon(NONE) };
  map.addLayer({ id: 'route-area-fill', type: 'fill', ...grid, paint: { 'fill-color': '#7b3fe4', 'fill-opacity': 0.14 } }, before);
  map.addLayer({ id: 'route-area-line', type: 'line', ...grid, paint: { 'line-color': '#7b3fe4', 'line-width': 3.5 } }, before);
  map.addLayer({ id: 'select-grid-fill', type: 'fill', ...grid, paint: { 'fill-color': '#f59f00', 'fill-opacity': 0.16 } }, before);
  map.addLayer({ id: 'select-grid-line', type: 'line', ...grid, paint: { 'line-color': '#e67700', 'line-width': 3 } }, before);
  // The zones at the clicked point: the same amber, dashed over the zone's own outline.
  const zonesAt = (list) => ['all', ['==', ['geometry-type'], 'Polygon'],
    ['any', ...list.map((z) => ['all', ['==', ['get', 'layer'], z.layer], ['==', ['get', 'id'], z.id]])]];
  map.addLayer({
    id: 'select-zone-line', type: 'line', source: 'citygrid', 'source-layer': 'zones', filter: zonesAt([]),
    paint: { 'line-color': '#e67700', 'line-width': 3, 'line-dasharray': [2, 1] },
  }, before);
  map.addSource('marks', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  let features = [];
  map.addLayer({
    id: 'marks',
    type: 'circle',
    source: 'marks',
    paint: {
      'circle-radius': 11,
      'circle-color': 'rgba(0,0,0,0)',
      'circle-stroke-width': 3,
      'circle-stroke-color': ['match', ['get', 'kind'], 'case', '#7b3fe4', '#e67700'],
    },
  });
  return {
    grid(layer, code) {
      map.setFilter(`${layer}-fill`, polygon(code ?? NONE));
      map.setFilter(`${layer}-line`, polygon(code ?? NONE));
    },
    zones(list) {
      map.setFilter('select-zone-line', zonesAt(list ?? []));
    },
    mark(kind, lngLat) {
      features = features.filter((f) => f.properties.kind !== kind);
      if (lngLat) features.push({ type: 'Feature', properties: { kind }, geometry: { type: 'Point', coordinates: [lngLat.lng, lngLat.lat] } });
      map.getSource('marks').setData({ type: 'FeatureCollection', features });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Side panel: legend and toggles.

function legend(map, health, style) {
  const lines = levelLines(style);
  $('grid-levels').innerHTML = health.levels
    .map((level, i) => {
      const n = String(i + 1);
      state.levels.add(n);
      const line = lines[n] ?? { colour: '#8a94a6' };
      return `<li><label><input type="checkbox" data-level="${n}" checked>
        <span class="swatch line${line.dashed ? ' dashed' : ''}" style="border-color:${esc(line.colour)}" aria-hidden="true"></span>
        ${esc(level.name)} ${en(level.name_en)} <span class="count">${level.grids.toLocaleString('zh-CN')}</span></label></li>`;
    })
    .join('');
  const colours = majorColours(style);
  $('component-classes').innerHTML = MAJORS.map(
    ([code, zh, english]) => `<li><label><input type="checkbox" data-major="${code}" checked>
      <span class="swatch dot" style="background:${esc(colours[code] ?? '#17becf')}" aria-hidden="true"></span>
      <span class="code">${code}</span> ${zh} ${en(english)} <span class="count" data-count="${code}"></span></label></li>`,
  ).join('');
  for (const box of document.querySelectorAll('#grid-levels input, #component-classes input')) {
    box.addEventListener('change', () => {
      const [set, key] = box.dataset.level ? [state.levels, box.dataset.level] : [state.majors, box.dataset.major];
      if (box.checked) set.add(key);
      else set.delete(key);
      applyFilters(map);
    });
  }
  showVersions(health);
}

function showVersions(health, note = '') {
  const versions = health.layers.map((l) => `${l.name} v${l.version}`).join(' · ');
  $('versions').textContent = `图层版本 Layer versions: ${versions}${note}`;
}

/**
 * A toggle per zone layer present (`zones` of the TileJSON), with its colour from the style and
 * its number of zones. Drawn again when a new zones version arrives: what was switched off stays
 * off, a new zone layer shows.
 */
function zoneLegend(map, style, zoneInfo) {
  const colours = zoneColours(style);
  const present = Object.entries(zoneInfo?.zone_layers ?? {});
  $('zone-layers').innerHTML = present
    .map(([layer, count]) => {
      const colour = esc(zoneColour(colours, layer));
      return `<li><label><input type="checkbox" data-zone-layer="${esc(layer)}"${state.hiddenZones.has(layer) ? '' : ' checked'}>
        <span class="swatch zone" style="border-color:${colour};background:${colour}33" aria-hidden="true"></span>
        ${zoneLayerName(layer)} <span class="count">${count.toLocaleString('zh-CN')}</span></label></li>`;
    })
    .join('');
  $('zones-hint').innerHTML = !zoneInfo
    ? `责任区图层读取失败。${en('Could not read the zone layers.')}`
    : present.length
      ? `${esc(zoneInfo.minzoom)} 级起显示；点击责任区查看名称与责任单位。${en(`Shown from zoom ${zoneInfo.minzoom}; click one for its name and unit.`)}`
      : `本市尚无责任区（如道路分段）。${en('This city has no zones (road sections…) yet.')}`;
  for (const box of document.querySelectorAll('#zone-layers input')) {
    box.addEventListener('change', () => {
      if (box.checked) state.hiddenZones.delete(box.dataset.zoneLayer);
      else state.hiddenZones.add(box.dataset.zoneLayer);
      applyFilters(map);
    });
  }
}

const zonesOfTileJson = () => api.tilejson('zones').then((tj) => tj.vector_layers?.find((l) => l.id === 'zones'), () => null);

// ---------------------------------------------------------------------------------------------
// A map kept open all day: when an import (or a rollback) changes a layer the map draws, its
// tiles are fetched again, past the browser's cache, and the zone legend and versions follow.

/** Checks the layer versions this often, and whenever the page comes back into view. */
const REFRESH_MS = 60_000;
/** Appended to tile and TileJSON requests (`v=`) once a layer has changed since the page loaded. */
let tileStamp = '';

function stampTiles(url, type) {
  if (!tileStamp || (type !== 'Tile' && type !== 'Source')) return undefined;
  const u = new URL(url, window.location.href);
  if (u.origin !== ROOT.origin || !u.pathname.startsWith(ROOT.pathname + 'tiles/')) return undefined;
  u.searchParams.set('v', tileStamp);
  return { url: u.toString() };
}

/** `g3-z2-c5`: the versions of the tile layers. */
const tileVersions = (health) =>
  ['grids', 'zones', 'components'].map((name) => `${name[0]}${health.layers.find((l) => l.name === name)?.version ?? 0}`).join('-');

function watchVersions(map, health, style, sourceUrl) {
  let current = tileVersions(health);
  let busy = false;
  let note = '';
  const check = async () => {
    if (busy) return;
    busy = true;
    try {
      const fresh = await api.health();
      const now = tileVersions(fresh);
      if (now === current) return showVersions(fresh, note);
      current = now;
      tileStamp = now;
      map.getSource('citygrid').setUrl(sourceUrl); // reloads every tile (stamped), old ones stay until replaced
      zoneLegend(map, style, await zonesOfTileJson());
      const time = new Date().toLocaleTimeString('zh-CN', { hour: '2-digit', minute: '2-digit' });
      note = ` · ${time} 已更新 updated`;
      showVersions(fresh, note);
    } catch {
      // The server is away for a moment: try again at the next check.
    } finally {
      busy = false;
    }
  };
  setInterval(check, REFRESH_MS);
  document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && check());
}

/** Components per major class in the whole city, next to the toggles. */
async function classCounts(extent) {
  try {
    const counts = await api.counts(extent);
    const byMajor = {};
    for (const c of counts.by_class ?? []) byMajor[c.class.slice(0, 2)] = (byMajor[c.class.slice(0, 2)] ?? 0) + c.count;
    for (const el of document.querySelectorAll('[data-count]')) el.textContent = (byMajor[el.dataset.count] ?? 0).toLocaleString('zh-CN');
  } catch {
    // Counts are a nicety; the toggles work without them.
  }
}

// ---------------------------------------------------------------------------------------------
// Popups: grid chain (click anywhere), component (click a point), search.

function chainHtml(chain) {
  return `<ol class="chain">${chain
    .map((g) => `<li><span class="lvl">${esc(g.level_name)} ${en(g.level_name_en)}</span>
      <span class="gname">${esc(g.name)}</span> <code>${esc(g.code)}</code></li>`)
    .join('')}</ol>`;
}

/** The responsible unit of a grid, or its nearest ancestor's (属地兜底). */
function unitOf(grid, chain) {
  return grid.unit ?? [...chain].reverse().find((g) => g.unit)?.unit ?? null;
}

function gridHtml(grid, chain, extra = '') {
  return `<div class="pop" data-grid="${esc(grid.code)}">
    <h3>${esc(grid.level_name)} ${en(grid.level_name_en)} <code class="big">${esc(grid.code)}</code></h3>
    <p class="name">${esc(grid.name)}</p>
    ${chainHtml(chain)}
    <dl>
      <dt>网格长 ${en('Grid chief')}</dt><dd>${who(grid.chief ?? [...chain].reverse().find((g) => g.chief)?.chief)}</dd>
      <dt>责任单位 ${en('Responsible unit')}</dt><dd>${who(unitOf(grid, chain))}</dd>
    </dl>${extra}</div>`;
}

function componentHtml(c) {
  const moved = c.located_grid
    ? `<p class="warn">位置落在网格 <code>${esc(c.located_grid.code ?? c.located_grid)}</code>，登记为 <code>${esc(c.grid)}</code>。
       ${en('Its location lies in another grid than the recorded one.')}</p>`
    : '';
  return `<div class="pop" data-component="${esc(c.code)}">
    <h3>部件 ${en('Component')} <code class="big">${esc(c.code)}</code></h3>
    <p class="name">${esc(c.class.name)} ${en(c.class.name_en)} <span class="code">${esc(c.class.code)}</span>
      <span class="cstatus status-${esc(c.status)}">${esc(c.status_zh)} ${en(c.status)}</span></p>
    <p class="muted">${esc(c.major_class.code)} ${esc(c.major_class.name)} ${en(c.major_class.name_en)} · 精度 ${en('accuracy')} ${esc(c.accuracy)}</p>
    <dl>
      <dt>主管部门 ${en('Competent dept.')}</dt><dd>${who(c.dept)}</dd>
      <dt>权属单位 ${en('Owner')}</dt><dd>${who(c.owner)}</dd>
      <dt>养护单位 ${en('Maintainer')}</dt><dd>${who(c.maintainer)}</dd>
      <dt>所在网格 ${en('Grid')}</dt><dd><code>${esc(c.grid ?? '—')}</code></dd>
    </dl>${moved}</div>`;
}

/** The zones at a clicked point (from the tiles): name, zone layer, id and unit of each. */
function zonesHtml(zones, colours) {
  if (!zones.length) return '';
  return `<div class="zones"><p class="sub-title">责任区 ${en('Zones')}</p><ul class="zone-list">${zones
    .map((z) => `<li data-zone="${esc(z.layer)}:${esc(z.id)}">
      <span class="swatch zone" style="border-color:${esc(zoneColour(colours, z.layer))}" aria-hidden="true"></span>
      <span class="zname">${esc(z.name)}</span>
      <span class="muted">${zoneLayerName(z.layer)} · <code>${esc(z.layer)}:${esc(z.id)}</code></span>
      <dl><dt>责任单位 ${en('Responsible unit')}</dt><dd>${z.unit ? esc(z.unit) : '<span class="muted">—</span>'}</dd></dl></li>`)
    .join('')}</ul></div>`;
}

function errorHtml(e, extra = '') {
  if (e.code === 'outside_coverage') {
    const n = e.details.nearest;
    const near = n ? `<p>最近网格 ${en('Nearest grid')}: ${esc(n.name)} <code>${esc(n.code)}</code>，${Math.round(n.distance_m)} m</p>` : '';
    return `<div class="pop"><h3>不在辖区网格内 ${en('Outside the city grids')}</h3>${near}${extra}</div>`;
  }
  return `<div class="pop"><h3>查询失败 ${en('Lookup failed')}</h3><p class="warn">${esc(e.message)}</p>${extra}</div>`;
}

function makePopups(maplibregl, map) {
  let popup = null;
  let seq = 0;
  /** Opens a popup at `lngLat` and fills it with what `load` resolves to (latest request wins). */
  async function show(lngLat, load) {
    const mine = ++seq;
    popup?.remove();
    popup = new maplibregl.Popup({ maxWidth: '360px', className: 'cg-popup', focusAfterOpen: false })
      .setLngLat(lngLat)
      .setHTML('<div class="pop"><p class="muted">查询中… <span class="en">Looking up…</span></p></div>')
      .addTo(map);
    let html;
    try {
      html = await load();
    } catch (e) {
      html = errorHtml(e);
    }
    if (mine === seq) popup.setHTML(html);
  }
  return { show, close: () => popup?.remove() };
}

// ---------------------------------------------------------------------------------------------
// Case routing (POST /v1/cases/route).

function routeResultHtml(r) {
  const suggested = r.suggested_staff
    ? `<p class="sub-title">就近监督员 ${en('Nearest available inspectors')}</p>${suggestedHtml(r.suggested_staff)}`
    : '';
  const deadline = r.deadline ?? {};
  // The due time as the server wrote it (its local time and offset), not the browser's zone.
  const dueText = deadline.due?.replace(/^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d(\.\d+)?)?/, '$1 $2 ').trim();
  const escalation =
    r.escalation == null ? '' : typeof r.escalation === 'string' ? esc(r.escalation) : r.escalation.name ? who(r.escalation) : esc(JSON.stringify(r.escalation));
  const row = (zh, english, value) => (value ? `<dt>${zh} ${en(english)}</dt><dd>${value}</dd>` : '');
  return `<div class="result">
    <p class="unit-label">责任单位 ${en('Responsible unit')}</p>
    <p class="unit" data-unit>${who(r.responsible_unit)}</p>
    <dl>
      ${row('派遣员', 'Dispatcher', r.dispatcher && who(r.dispatcher))}
      ${row('网格', 'Grid', r.grid && `${esc(r.grid.name)} <code>${esc(r.grid.code)}</code>`)}
      ${row('处置时限', 'Deadline', [deadline.urgency, deadline.limit].filter(Boolean).map(esc).join(' · '))}
      ${row('截止时间', 'Due', dueText && esc(dueText))}
      ${row('超时升级', 'Escalation', escalation)}
      ${row('规则', 'Rule', r.rule?.why && esc(r.rule.why))}
      ${row('高亮区域', 'Highlighted area', r.area?.grid && `<code>${esc(r.area.grid)}</code>`)}
    </dl>
    ${r.explanation?.length ? `<p class="sub-title">派遣依据 ${en('Why')}</p><ol class="why">${r.explanation.map((s) => `<li>${esc(s)}</li>`).join('')}</ol>` : ''}
    ${r.warnings?.length ? `<ul class="warn">${r.warnings.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>` : ''}
    ${suggested}
  </div>`;
}

async function setupRouting(map, marks, popups, staff) {
  const status = $('route-status');
  const typeSelect = $('route-type');
  const urgencySelect = $('route-urgency');
  const pick = $('route-pick');
  try {
    state.caseTypes = (await api.caseTypes()).types ?? [];
  } catch (e) {
    status.innerHTML =
      e.status === 404
        ? `此服务器未开通案件派遣。<br>${en('Case routing is not available on this server.')}`
        : `案件类型读取失败 ${en('Could not load the case types')}: ${esc(e.message)}`;
    status.classList.add('unavailable');
    return;
  }
  if (state.caseTypes.length === 0) {
    status.innerHTML = `责任清单中没有案件类型。${en('The responsibility list has no case types.')}`;
    return;
  }
  const groups = [
    ['event', '事件 Events'],
    ['component', '部件 Components'],
  ];
  typeSelect.innerHTML = groups
    .map(([kind, label]) => {
      const options = state.caseTypes
        .map((t, i) => [t, i])
        .filter(([t]) => t.kind === kind)
        .map(([t, i]) => `<option value="${i}">${esc(t.code)} ${esc(t.name)}</option>`)
        .join('');
      return options ? `<optgroup label="${esc(label)}">${options}</optgroup>` : '';
    })
    .join('');
  const fillUrgencies = () => {
    const urgencies = state.caseTypes[typeSelect.value]?.urgencies ?? [];
    urgencySelect.innerHTML = urgencies.map((u) => `<option>${esc(u)}</option>`).join('') || '<option value="">默认 default</option>';
  };
  typeSelect.addEventListener('change', fillUrgencies);
  fillUrgencies();
  $('route-form').hidden = false;
  status.innerHTML = `选择类型后在地图上点选案件位置。${en('Choose a type, then pick the case location on the map.')}`;

  const setPicking = (on) => {
    state.picking = on;
    pick.setAttribute('aria-pressed', String(on));
    pick.classList.toggle('active', on);
    map.getCanvas().style.cursor = on ? 'crosshair' : '';
    if (on) popups.close(); // the whole map is free to click
    if (on) status.innerHTML = `请点击地图上的案件位置（Esc 取消）。${en('Click the case location on the map (Esc cancels).')}`;
  };
  pick.addEventListener('click', () => setPicking(!state.picking));
  document.addEventListener('keydown', (e) => e.key === 'Escape' && state.picking && setPicking(false));

  /** Routes the chosen case type at `lngLat`; the panel shows the answer. */
  return async function routeAt(lngLat) {
    setPicking(false);
    const type = state.caseTypes[typeSelect.value];
    const body = { lon: lngLat.lng, lat: lngLat.lat, [type.kind === 'event' ? 'event_type' : 'component_class']: type.code };
    if (urgencySelect.value) body.urgency = urgencySelect.value;
    // With a staff token, the answer suggests the nearest available inspectors.
    if (staffToken.get()) body.suggest_staff = 3;
    marks.mark('case', lngLat);
    staff?.showSuggested(lngLat, null);
    status.innerHTML = `派遣中… ${en('Routing…')}`;
    $('route-result').innerHTML = '';
    try {
      const answer = await api.route(body);
      status.innerHTML = `${esc(type.code)} ${esc(type.name)} @ ${lngLat.lng.toFixed(6)}, ${lngLat.lat.toFixed(6)}`;
      $('route-result').innerHTML = routeResultHtml(answer);
      staff?.showSuggested(lngLat, answer.suggested_staff);
      marks.grid('route-area', answer.area?.grid);
      if (answer.area?.grid) {
        const area = await api.grid(answer.area.grid).catch(() => null);
        if (area?.bbox) {
          const [w, s, e, n] = area.bbox;
          map.fitBounds([[Math.min(w, lngLat.lng), Math.min(s, lngLat.lat)], [Math.max(e, lngLat.lng), Math.max(n, lngLat.lat)]], { padding: 80, maxZoom: 17 });
        }
      }
    } catch (e) {
      marks.grid('route-area', null);
      status.innerHTML = '';
      $('route-result').innerHTML = `<div class="result"><p class="warn">派遣失败 ${en('Routing failed')} (${esc(e.code)}): ${esc(e.message)}</p></div>`;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Case hot spots: routed cases per unit grid (`/v1/stats/cases?level=grid`) for a period and a
// case type, as a choropleth of the unit grids joined on their codes, with its own legend.

const HOTSPOT_COLOURS = ['#fee391', '#fec44f', '#fe9929', '#d95f0e', '#993404'];
const HOTSPOT_PERIODS = [
  [7, '近 7 天', 'last 7 days'],
  [30, '近 30 天', 'last 30 days'],
  [90, '近 90 天', 'last 90 days'],
  [365, '近一年', 'last year'],
  [0, '全部', 'all time'],
];

/** Up to five classes of counts: [low, high] each, from the counts' quantiles. */
function hotspotClasses(counts) {
  const values = [...counts].sort((a, b) => a - b);
  if (!values.length) return [];
  const tops = [...new Set([0.2, 0.4, 0.6, 0.8, 1].map((q) => values[Math.min(values.length - 1, Math.ceil(q * values.length) - 1)]))];
  return tops.map((high, i) => [i === 0 ? values[0] : tops[i - 1] + 1, high]);
}

function setupHotspots(map, beforeId) {
  const on = $('hotspots-on');
  const period = $('hotspots-period');
  const type = $('hotspots-type');
  const status = $('hotspots-status');
  period.innerHTML = HOTSPOT_PERIODS.map(([days, zh, english]) => `<option value="${days}"${days === 30 ? ' selected' : ''}>${zh} ${english}</option>`).join('');
  type.innerHTML = `<option value="">全部类型 All case types</option>` +
    state.caseTypes.map((t) => `<option value="${esc(t.code)}">${esc(t.code)} ${esc(t.name)}</option>`).join('');
  map.addLayer(
    {
      id: 'hotspots-fill',
      type: 'fill',
      source: 'citygrid',
      'source-layer': 'grids',
      filter: ['==', ['get', 'code'], NONE],
      layout: { visibility: 'none' },
      paint: { 'fill-color': '#fe9929', 'fill-opacity': 0.7, 'fill-outline-color': 'rgba(80, 40, 0, 0.5)' },
    },
    beforeId,
  );
  let asked = 0;
  const refresh = async () => {
    const visible = on.checked;
    map.setLayoutProperty('hotspots-fill', 'visibility', visible ? 'visible' : 'none');
    period.disabled = type.disabled = !visible;
    if (!visible) {
      $('hotspots-legend').innerHTML = '';
      status.textContent = '';
      return;
    }
    const params = { level: 'grid' };
    const days = Number(period.value);
    if (days) params.since = new Date(Date.now() - days * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');
    if (type.value) params.case_type = type.value;
    const ticket = ++asked;
    status.textContent = '正在统计… Counting…';
    let stats;
    try {
      stats = await api.stats(params);
    } catch (e) {
      if (ticket === asked) status.innerHTML = `案件统计读取失败 ${en('Could not load the case statistics')}: ${esc(e.message)}`;
      return;
    }
    if (ticket !== asked) return; // a newer choice is on its way
    const entries = Object.entries(stats.by_grid ?? {}).filter(([, n]) => n > 0);
    const classes = hotspotClasses(entries.map(([, n]) => n));
    const colour = ['match', ['get', 'code']];
    const legendRows = classes.map(([low, high], i) => {
      const codes = entries.filter(([, n]) => n >= low && n <= high).map(([code]) => code);
      colour.push(codes, HOTSPOT_COLOURS[i + HOTSPOT_COLOURS.length - classes.length]);
      return `<li><span class="swatch zone" style="border-color:${HOTSPOT_COLOURS[i + HOTSPOT_COLOURS.length - classes.length]};background:${HOTSPOT_COLOURS[i + HOTSPOT_COLOURS.length - classes.length]}" aria-hidden="true"></span>
        ${low === high ? low : `${low}–${high}`} 件 ${en(low === high && low === 1 ? 'case' : 'cases')} <span class="count">${codes.length} 个网格 ${en('grids')}</span></li>`;
    });
    colour.push('rgba(0, 0, 0, 0)');
    const codes = entries.map(([code]) => code);
    map.setFilter('hotspots-fill', ['all', ['==', ['geometry-type'], 'Polygon'], ['in', ['get', 'code'], ['literal', codes.length ? codes : [NONE]]]]);
    map.setPaintProperty('hotspots-fill', 'fill-color', classes.length ? colour : '#fe9929');
    $('hotspots-legend').innerHTML = legendRows.join('');
    const unplaced = stats.unplaced ? `；${stats.unplaced} 件无网格 ${en(`${stats.unplaced} without a grid`)}` : '';
    status.innerHTML = entries.length
      ? `共 ${stats.total} 件，${entries.length} 个网格${unplaced}。放大至单元网格层级查看。${en(`${stats.total} cases in ${entries.length} grids; zoom in to the unit grids to see them.`)}`
      : `此期间没有派遣案件。${en('No routed cases in this period.')}`;
  };
  for (const el of [on, period, type]) el.addEventListener('change', refresh);
  period.disabled = type.disabled = true;
  return refresh;
}

// --- Basemap switch (街道图 / 影像) ---------------------------------------------------------------
// The style lists its basemaps in metadata["citygrid:basemaps"] ({id, name, kind, layers}), the
// server's own files (`serve --basemap`, the demo's street map): vector ones are street maps,
// raster ones imagery. The switch shows one kind (or none) by the layers' visibility.

const BASEMAP_CHOICES = [
  { kind: 'vector', label: '街道图', en: 'Street map' },
  { kind: 'raster', label: '影像', en: 'Imagery' },
  { kind: 'none', label: '无底图', en: 'None' },
];

function setupBasemapSwitch(map, style) {
  const basemaps = style.metadata?.['citygrid:basemaps'] ?? [];
  const section = $('basemaps');
  if (!section || !basemaps.length) return;
  const kinds = new Set(basemaps.map((b) => b.kind));
  const choices = BASEMAP_CHOICES.filter((c) => c.kind === 'none' || kinds.has(c.kind));
  const visibleKind = kinds.has('vector') ? 'vector' : 'raster';
  const names = (kind) => basemaps.filter((b) => b.kind === kind).map((b) => esc(b.name)).join('、');
  $('basemap-choice').innerHTML = choices
    .map((c) => `<li><label><input type="radio" name="basemap" value="${c.kind}"${c.kind === visibleKind ? ' checked' : ''}>
      ${c.label} <span class="en">${c.en}</span>${c.kind !== 'none' ? ` <span class="count">${names(c.kind)}</span>` : ''}</label></li>`)
    .join('');
  const show = (kind) => {
    for (const b of basemaps) {
      for (const id of b.layers) {
        if (map.getLayer(id)) map.setLayoutProperty(id, 'visibility', b.kind === kind ? 'visible' : 'none');
      }
    }
  };
  for (const input of section.querySelectorAll('input[name="basemap"]')) {
    input.addEventListener('change', () => input.checked && show(input.value));
  }
  show(visibleKind);
  section.hidden = false;
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Cluster bubbles: a symbol icon, so that they take part in label collision (circles never do).

const CLUSTER_ICON = 'citygrid-cluster';

/**
 * The style's `component-clusters` layer draws `icon-image: citygrid-cluster`; the style has no
 * sprite, so the page supplies the image when MapLibre asks for it (its missing-image resolver):
 * a signed distance field of a disc (64 px at pixel ratio 2, radius 26 px, 6 px of field around
 * it), which the style colours (`icon-color`) and rings (`icon-halo-*`). A client without it
 * draws the counts alone.
 */
function supplyClusterIcon(map) {
  const add = (id) => {
    if (id !== CLUSTER_ICON || map.hasImage(CLUSTER_ICON)) return;
    const size = 64;
    const radius = 26;
    const data = new Uint8Array(size * size * 4);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        // MapLibre's SDF: 0.75 on the edge, 1/8 per pixel inwards / outwards.
        const inside = radius - Math.hypot(x + 0.5 - size / 2, y + 0.5 - size / 2);
        const a = Math.max(0, Math.min(1, 0.75 + inside / 8));
        data.set([255, 255, 255, Math.round(a * 255)], (y * size + x) * 4);
      }
    }
    map.addImage(CLUSTER_ICON, { width: size, height: size, data }, { sdf: true, pixelRatio: 2 });
  };
  if (map.setMissingStyleImageResolver) map.setMissingStyleImageResolver(add);
  else map.on('styleimagemissing', (e) => add(e.id));
}

async function main() {
  const maplibregl = await loadMapLibre();
  if (!maplibregl) return;
  let health, style, zoneInfo;
  try {
    [health, style, zoneInfo] = await Promise.all([
      api.health(),
      api.style(),
      zonesOfTileJson(),
    ]);
  } catch (e) {
    fatal(`<h2>无法连接服务器 ${en('Cannot reach the citygrid server')}</h2><p>${esc(e.message)}</p>`);
    return;
  }
  $('city-name').textContent = health.city;
  const sourceUrl = style.sources.citygrid?.url;
  document.title = `${health.city} · citygrid 指挥中心地图`;
  const map = new maplibregl.Map({
    container: 'map',
    style: offlineStyle(style),
    bounds: health.extent,
    fitBoundsOptions: { padding: 24 },
    localIdeographFontFamily: CJK_FONTS,
    transformRequest: stampTiles,
    attributionControl: { compact: true },
    hash: true,
  });
  window.citygridMap = map;
  supplyClusterIcon(map);
  map.addControl(new maplibregl.NavigationControl({ visualizePitch: false }), 'top-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-right');
  legend(map, health, style);
  zoneLegend(map, style, zoneInfo);
  const colours = zoneColours(style);
  classCounts(health.extent);

  await map.once('load');
  setupBasemapSwitch(map, style);
  const marks = addHighlights(map);
  applyFilters(map);
  const popups = makePopups(maplibregl, map);
  const show = popups.show;
  // Under the grid outlines, so the grids stay readable over the colours.
  const gridLines = state.gridLayers.find((l) => map.getLayer(l.id)?.type === 'line')?.id;
  const textFont = style.layers.find((l) => l.type === 'symbol' && l.layout?.['text-font'])?.layout['text-font'];
  const staff = setupStaff(map, { show, beforeId: gridLines, textFont, levels: health.levels });
  const routeAt = await setupRouting(map, marks, popups, staff);
  setupHotspots(map, gridLines);
  if (sourceUrl) watchVersions(map, health, style, sourceUrl);

  const pointLayers = state.pointLayers.map((l) => l.id);
  const clusterLayers = state.clusterLayers.filter((l) => map.getLayer(l.id)).map((l) => l.id);
  const zoneFills = state.zoneLayers.filter((l) => map.getLayer(l.id)?.type === 'fill').map((l) => l.id);
  const near = (p, r) => [[p.x - r, p.y - r], [p.x + r, p.y + r]];

  const showComponent = (code, lngLat) =>
    show(lngLat, async () => {
      marks.mark('component', lngLat);
      return componentHtml(await api.component(code));
    });
  /** The zones drawn at a pixel, each once (a zone may come from several tiles). */
  const zonesAt = (point) => {
    const seen = new Map();
    for (const f of zoneFills.length ? map.queryRenderedFeatures(point, { layers: zoneFills }) : []) {
      const { layer, id, name, unit } = f.properties;
      if (!seen.has(`${layer}:${id}`)) seen.set(`${layer}:${id}`, { layer, id, name, unit });
    }
    return [...seen.values()];
  };
  const showGrid = (lngLat, cluster, zones = []) =>
    show(lngLat, async () => {
      marks.zones(zones);
      const zonePart = zonesHtml(zones, colours);
      let answer;
      try {
        answer = await api.locate(lngLat.lng, lngLat.lat);
      } catch (e) {
        marks.grid('select-grid', null);
        return errorHtml(e, zonePart);
      }
      marks.grid('select-grid', answer.grid.code);
      const n = cluster?.properties.point_count;
      const notes = [
        answer.on_boundary && `点位在网格边界上。${en('On a grid boundary.')}`,
        n && `此处聚合 ${n} 个部件，放大至 16 级可逐个点选。${en(`${n} components here; zoom to 16 to click them one by one.`)}`,
      ].filter(Boolean);
      return gridHtml(answer.grid, answer.chain, notes.map((t) => `<p class="hint">${t}</p>`).join('') + zonePart);
    });

  map.on('click', (e) => {
    if (state.picking && routeAt) return routeAt(e.lngLat);
    if (staff.click(e)) return;
    // The component nearest the click, within a few pixels.
    const distance = (f) => map.project(f.geometry.coordinates).dist(e.point);
    const [point] = map
      .queryRenderedFeatures(near(e.point, 6), { layers: pointLayers })
      .sort((a, b) => distance(a) - distance(b));
    if (point) {
      const [lng, lat] = point.geometry.coordinates;
      return showComponent(point.properties.code, { lng, lat });
    }
    return showGrid(e.lngLat, map.queryRenderedFeatures(e.point, { layers: clusterLayers })[0], zonesAt(e.point));
  });
  for (const id of pointLayers.concat(clusterLayers, staff.layers)) {
    map.on('mouseenter', id, () => state.picking || (map.getCanvas().style.cursor = 'pointer'));
    map.on('mouseleave', id, () => state.picking || (map.getCanvas().style.cursor = ''));
  }

  $('search').addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('search-status');
    const target = codeKind($('search-code').value);
    if (!target) {
      out.innerHTML = `请输入 14 位网格编码或 16 位部件编码。${en('Enter a 14-digit grid code or a 16-digit component code.')}`;
      return;
    }
    out.textContent = '…';
    try {
      if (target.kind === 'component') {
        const c = await api.component(target.code);
        const lngLat = { lng: c.location.lon, lat: c.location.lat };
        map.flyTo({ center: lngLat, zoom: Math.max(map.getZoom(), 18) });
        marks.mark('component', lngLat);
        show(lngLat, async () => componentHtml(c));
        out.innerHTML = `${esc(c.class.name)} <code>${esc(c.code)}</code>`;
      } else {
        const g = await api.grid(target.code);
        const [w, s, east, n] = g.bbox;
        map.fitBounds([[w, s], [east, n]], { padding: 60, maxZoom: 17 });
        marks.grid('select-grid', g.code);
        show({ lng: (w + east) / 2, lat: (s + n) / 2 }, async () => gridHtml(g, g.chain));
        out.innerHTML = `${esc(g.name)} <code>${esc(g.code)}</code>`;
      }
    } catch (err) {
      out.innerHTML = `未找到 ${en('Not found')}: ${esc(err.message)}`;
    }
  });
}

main().catch((e) => {
  console.error(e);
  fatal(`<h2>地图无法启动 ${en('The map could not start')}</h2>
    <p>本页需要支持 WebGL 的浏览器（Chrome、Edge、Firefox 新版）。${en('This page needs a browser with WebGL (a recent Chrome, Edge or Firefox).')}</p>
    <p class="hint">${esc(e.message)}</p>`);
});
