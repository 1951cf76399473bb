// charts.js: the daily series of a window and its two charts (Chart.js from
// Debian's libjs-chart.js, loaded before this module as the global Chart):
// successful and failed sessions per day, and failed sessions per result type
// per day. A day without reports is a gap (null), never a zero and never
// skipped; each chart has the same numbers as a table for screen readers.

import * as api from './api.js';
import {fmt, h, table} from './dom.js';

const live = new Set();

// Destroy the charts of the page being left.
export function destroyCharts() {
  for (const c of live) c.destroy();
  live.clear();
}

// The API's daily summary for a window. Days without reports may be absent
// (or present with zeros, with the API's fill=1): byDay() puts every day of
// the window in its place either way, so the console does not need fill.
export async function dailySummary(r, extra) {
  return api.get('/api/v1/summary', Object.assign({by: 'day', since: r.since, until: r.until},
    extra));
}

// Align the groups on the window's days: a day without reports is null.
export function byDay(days, summary) {
  const groups = new Map();
  for (const g of summary.groups || []) groups.set(g.day, g);
  return days.map((d) => {
    const g = groups.get(d);
    return g && g.reports > 0 ? g : null;
  });
}

// Result types seen in the window, most failed sessions first.
export function resultTypes(summary) {
  const f = (summary.totals && summary.totals.failures) || {};
  return Object.keys(f).sort((a, b) => f[b] - f[a] || a.localeCompare(b));
}

const palette = ['#c62828', '#1565c0', '#ef6c00', '#6a1b9a', '#2e7d32', '#00838f', '#ad1457',
  '#4e342e', '#283593', '#9e9d24', '#37474f', '#d84315'];

// Fewer day ticks on a narrow chart, also when the window is resized.
function fitTicks(c, size) {
  const n = size.width < 480 ? 4 : 7;
  const ticks = c.options.scales.x.ticks;
  if (ticks.maxTicksLimit !== n) {
    ticks.maxTicksLimit = n;
    c.update('none');
  }
}

function chart(canvas, config) {
  if (!window.Chart || !canvas.isConnected) return null;
  config.options = Object.assign({
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    onResize: fitTicks,
    interaction: {mode: 'index', intersect: false},
    plugins: {legend: {position: 'bottom', labels: {boxWidth: 12}}},
  }, config.options);
  const c = new window.Chart(canvas, config);
  live.add(c);
  return c;
}

// The x axis of days: "MM-DD" under the ticks (the tooltips keep the year).
function dayAxis() {
  return {ticks: {maxRotation: 0, autoSkip: true, maxTicksLimit: window.innerWidth < 640 ? 4 : 7,
    callback(value) { return String(this.getLabelForValue(value)).slice(5); }}};
}

function canvas(id, label) {
  return h('canvas', {id, role: 'img', 'aria-label': label});
}

function numbersTable(days, rows, columns, caption) {
  return h('details', {class: 'small'}, h('summary', null, 'The numbers'),
    table({caption, columns: [{label: 'Day'}].concat(columns.map((c) => ({label: c, num: true}))),
      rows: days.map((d, i) => [d].concat(rows[i]))}));
}

// Successful and failed sessions per day (two axes: failures are few).
export function sessionsPanel(days, aligned, id = 'chart-sessions') {
  const c = canvas(id, 'Successful and failed TLS sessions per day');
  const ok = aligned.map((g) => (g ? g.successful_sessions : null));
  const bad = aligned.map((g) => (g ? g.failed_sessions : null));
  const radius = days.length > 120 ? 1 : 2;
  const panel = h('section', {class: 'panel', 'aria-labelledby': `${id}-title`},
    h('h2', {id: `${id}-title`}, 'Sessions per day'),
    h('div', {class: 'chart-box'}, c),
    numbersTable(days, aligned.map((g, i) => g ? [fmt.int(ok[i]), fmt.int(bad[i])] : ['—', '—']),
      ['Successful', 'Failed'], 'Sessions per day (— : no reports)'));
  requestAnimationFrame(() => chart(c, {
    type: 'bar',
    data: {labels: days, datasets: [
      {type: 'line', label: 'Failed sessions', data: bad, borderColor: '#c62828',
        backgroundColor: '#c62828', yAxisID: 'y1', spanGaps: false, pointRadius: radius,
        borderWidth: 2, order: 0},
      {type: 'bar', label: 'Successful sessions', data: ok, backgroundColor: '#3f9d5f',
        borderColor: '#1b7a3d', yAxisID: 'y', order: 1},
    ]},
    options: {scales: {
      x: dayAxis(),
      y: {beginAtZero: true, position: 'left', title: {display: true, text: 'successful'}},
      y1: {beginAtZero: true, position: 'right', grid: {drawOnChartArea: false},
        title: {display: true, text: 'failed'}},
    }},
  }));
  return panel;
}

// Failed sessions per result type per day, stacked.
export function failuresPanel(days, aligned, types, id = 'chart-failures') {
  const c = canvas(id, 'Failed TLS sessions per result type per day');
  const sets = types.map((t, k) => ({
    label: t,
    data: aligned.map((g) => (g ? (g.failures && g.failures[t]) || 0 : null)),
    backgroundColor: palette[k % palette.length],
    stack: 'failures',
  }));
  const panel = h('section', {class: 'panel', 'aria-labelledby': `${id}-title`},
    h('h2', {id: `${id}-title`}, 'Failed sessions per result type'),
    types.length ? h('div', {class: 'chart-box tall'}, c)
      : h('p', {class: 'muted'}, 'No failed sessions in this window.'),
    types.length ? numbersTable(days, aligned.map((g, i) =>
      sets.map((s) => (g ? fmt.int(s.data[i]) : '—'))), types,
    'Failed sessions per result type per day (— : no reports)') : null);
  if (types.length) {
    requestAnimationFrame(() => chart(c, {
      type: 'bar',
      data: {labels: days, datasets: sets},
      options: {scales: {
        x: Object.assign(dayAxis(), {stacked: true}),
        y: {stacked: true, beginAtZero: true},
      }},
    }));
  }
  return panel;
}
