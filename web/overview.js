// overview.js: every domain with its sessions, failure rate, trend and status
// over the chosen window, the two daily charts and the result types seen.
// Three API calls, made together: the window by domain and the window before
// it by domain (for the trend), both sessions only (failures=0: the result
// types come from the third), and the window by day.

import * as api from './api.js';
import {byDay, dailySummary, failuresPanel, resultTypes, sessionsPanel} from './charts.js';
import {fill, fmt, h, loading, problem, table} from './dom.js';
import {periodControls, periodOf, periodParams, range} from './period.js';
import {descriptions, fix, meaning, status, trend} from './status.js';

export function domainLink(domain, p) {
  const q = new URLSearchParams(periodParams(p)).toString();
  return `#/domain/${encodeURIComponent(fmt.domain(domain))}${q ? '?' + q : ''}`;
}

export function cards(totals, extra) {
  const card = (cls, label, value) => h('div', {class: `card ${cls}`},
    h('span', {class: 'label'}, label), h('span', {class: 'value'}, value));
  return h('div', {class: 'cards'},
    card('successful', 'Successful sessions', fmt.int(totals.successful_sessions)),
    card('failed', 'Failed sessions', fmt.int(totals.failed_sessions)),
    card('rate', 'Failure rate', fmt.rate(totals.failure_rate)),
    card('reports', 'Reports', fmt.int(totals.reports)),
    extra);
}

export function resultTypesPanel(types, totals, desc, id) {
  const f = (totals && totals.failures) || {};
  return h('section', {class: 'panel', 'aria-labelledby': `${id}-title`},
    h('h2', {id: `${id}-title`}, 'Result types: what failed and what to do'),
    table({
      id,
      columns: [{label: 'Result type', rowHeader: true}, {label: 'Failed sessions', num: true},
        {label: 'Meaning', class: 'wrap'}, {label: 'Fix', class: 'wrap'}],
      rows: types.map((t) => [h('code', null, t), {value: fmt.int(f[t]), class: 'failed'},
        meaning(desc, t), fix(desc, t)]),
      rowAttrs: types.map((t) => ({'data-type': t})),
      empty: 'No failed sessions in this window.',
    }));
}

export async function render(root, params, nav) {
  const p = periodOf(params);
  const r = range(p), before = range(p, 1);
  root.append(h('h1', {tabindex: '-1'}, 'Overview'),
    periodControls(p, (np) => nav('/', periodParams(np))),
    h('p', {class: 'muted small'}, `${r.since} to ${r.days[r.days.length - 1]} (UTC), ` +
      `reports by start time; trends against ${before.since} to ` +
      `${before.days[before.days.length - 1]}.`));
  const body = root.appendChild(h('div', {class: 'stack'}, loading()));
  let cur, prev, daily;
  try {
    [cur, prev, daily] = await Promise.all([
      api.get('/api/v1/summary', {by: 'domain', since: r.since, until: r.until, failures: 0}),
      api.get('/api/v1/summary',
        {by: 'domain', since: before.since, until: before.until, failures: 0}),
      dailySummary(r),
    ]);
  } catch (e) {
    fill(body, problem(e, 'The summary'));
    return;
  }
  const prevBy = new Map((prev.groups || []).map((g) => [g.policy_domain, g]));
  const groups = (cur.groups || []).slice().sort((a, b) =>
    b.failed_sessions - a.failed_sessions ||
    fmt.domain(a.policy_domain).localeCompare(fmt.domain(b.policy_domain)));
  const aligned = byDay(r.days, daily);
  const types = resultTypes(daily);
  const desc = descriptions(cur, daily);
  fill(body, 
    cards(cur.totals, h('div', {class: 'card domains'}, h('span', {class: 'label'}, 'Domains'),
      h('span', {class: 'value'}, fmt.int(groups.length)))),
    h('div', {class: 'charts'}, sessionsPanel(r.days, aligned), failuresPanel(r.days, aligned,
      types)),
    h('section', {class: 'panel', 'aria-labelledby': 'domains-title'},
      h('h2', {id: 'domains-title'}, 'Domains'),
      table({
        id: 'domains',
        columns: [{label: 'Domain', rowHeader: true}, {label: 'Successful', num: true},
          {label: 'Failed', num: true}, {label: 'Failure rate', num: true}, {label: 'Trend'},
          {label: 'Status'}, {label: 'Reports', num: true}, {label: 'Last report'}],
        rows: groups.map((g) => [
          h('a', {href: domainLink(g.policy_domain, p)}, fmt.domain(g.policy_domain)),
          {value: fmt.int(g.successful_sessions), class: 'successful'},
          {value: fmt.int(g.failed_sessions), class: 'failed'},
          {value: fmt.rate(g.failure_rate), class: 'rate'},
          {value: trend(g, prevBy.get(g.policy_domain), p.days), class: 'trend-cell'},
          {value: status(g), class: 'status'},
          {value: fmt.int(g.reports), class: 'reports'},
          {value: fmt.time(g.last_report), class: 'last'},
        ]),
        rowAttrs: groups.map((g) => ({'data-domain': fmt.domain(g.policy_domain)})),
        empty: 'No reports in this window.',
      })),
    resultTypesPanel(types, daily.totals, desc, 'result-types'));
}
