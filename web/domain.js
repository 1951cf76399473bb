// domain.js: one policy domain over the chosen window: its totals and daily
// charts, its policies (type, mode, MX hosts), failures by result type (with
// meaning and fix), by sending IP and by receiving MX, its reporters and when
// each last reported, and the findings about it as of the window's last day.

import * as api from './api.js';
import {byDay, dailySummary, failuresPanel, resultTypes, sessionsPanel} from './charts.js';
import {badge, fill, fmt, h, loading, problem, table} from './dom.js';
import {cards, resultTypesPanel} from './overview.js';
import {asOf, periodControls, periodOf, periodParams, range} from './period.js';
import {descriptions} from './status.js';
import {findingList} from './findings.js';

const TOP = 20;

function failureList(failures) {
  const f = failures || {};
  return Object.keys(f).sort((a, b) => f[b] - f[a]).map((t) => `${t} ${fmt.int(f[t])}`).join(', ');
}

function section(id, title, ...content) {
  return h('section', {class: 'panel', 'aria-labelledby': `${id}-title`},
    h('h2', {id: `${id}-title`}, title), content);
}

function modeBadge(mode) {
  if (mode === 'enforce') return badge('ok', 'enforce');
  if (mode === 'testing') return badge('warning', 'testing');
  if (mode === 'none') return badge('critical', 'none');
  return badge('none', mode || '—');
}

function policiesSection(res, types) {
  const byType = table({
    id: 'policy-types',
    caption: 'Sessions by policy type',
    columns: [{label: 'Policy type', rowHeader: true}, {label: 'Successful', num: true},
      {label: 'Failed', num: true}, {label: 'Failure rate', num: true}, {label: 'Reports', num: true}],
    rows: (types.groups || []).map((g) => [h('code', null, g.policy_type),
      {value: fmt.int(g.successful_sessions), class: 'successful'},
      {value: fmt.int(g.failed_sessions), class: 'failed'}, fmt.rate(g.failure_rate),
      fmt.int(g.reports)]),
    empty: 'No policies in this window.',
  });
  let list;
  if (res.status === 'rejected') {
    list = problem(res.reason, 'Policies');
  } else {
    const pol = res.value.policies || [];
    list = table({
      id: 'policies',
      caption: 'Policies as the senders evaluated them',
      columns: [{label: 'Type'}, {label: 'Mode'}, {label: 'MX hosts'}, {label: 'Policy'},
        {label: 'Reports', num: true}, {label: 'First seen'}, {label: 'Last seen'}],
      rows: pol.map((x) => [h('code', null, x.policy_type), modeBadge(x.mode),
        {value: (x.mx_hosts || []).join(', ') || '—', class: 'wrap'},
        (x.policy_strings || []).length
          ? h('pre', {class: 'block wrap'}, x.policy_strings.join('\n')) : '—',
        fmt.int(x.reports), fmt.time(x.first_seen), fmt.time(x.last_seen)]),
      empty: 'No policies in this window.',
    });
  }
  return section('policies', 'Policies', byType, list);
}

function failuresBy(id, title, key, summary, label) {
  const groups = summary.groups || [];
  return section(id, title, table({
    id,
    columns: [{label, rowHeader: true}, {label: 'Failed sessions', num: true},
      {label: 'Result types'}],
    rows: groups.map((g) => [h('code', null, g[key] || '(none)'),
      {value: fmt.int(g.failed_sessions), class: 'failed'}, {value: failureList(g.failures),
        class: 'wrap'}]),
    empty: 'No failed sessions in this window.',
  }), groups.length >= TOP ? h('p', {class: 'muted small'}, `The ${TOP} with the most failed ` +
    'sessions.') : null);
}

export async function render(root, params, nav, name) {
  const p = periodOf(params);
  const r = range(p);
  const domain = name;
  const q = (extra) => Object.assign({domain, since: r.since, until: r.until}, extra);
  const reportsLink = `#/reports?${new URLSearchParams({domain, since: r.since,
    until: r.days[r.days.length - 1]})}`;
  root.append(h('h1', {tabindex: '-1'}, domain),
    periodControls(p, (np) => nav(`/domain/${encodeURIComponent(domain)}`, periodParams(np))),
    h('p', {class: 'muted small'}, `${r.since} to ${r.days[r.days.length - 1]} (UTC). `,
      h('a', {href: reportsLink}, 'The reports behind these numbers'), ' · ',
      h('a', {href: `#/?${new URLSearchParams(periodParams(p))}`}, 'All domains')));
  const body = root.appendChild(h('div', {class: 'stack'}, loading()));
  let daily, rtypes, ips, mxs, reporters, ptypes;
  try {
    [daily, rtypes, ips, mxs, reporters, ptypes] = await Promise.all([
      dailySummary(r, {domain}),
      api.get('/api/v1/summary', q({by: 'result-type'})),
      api.get('/api/v1/summary', q({by: 'sending-ip', top: TOP})),
      api.get('/api/v1/summary', q({by: 'mx-host', top: TOP})),
      api.get('/api/v1/summary', q({by: 'reporter'})),
      api.get('/api/v1/summary', q({by: 'policy-type'})),
    ]);
  } catch (e) {
    fill(body, problem(e, 'The summary'));
    return;
  }
  const [policies, findings] = await Promise.allSettled([
    api.get('/api/v1/policies', {domain, since: r.since}),
    api.get('/api/v1/findings', Object.assign({domain, since: r.since}, asOf(p))),
  ]);
  const aligned = byDay(r.days, daily);
  const types = resultTypes(daily);
  const desc = descriptions(daily, rtypes);
  const rtOrder = (rtypes.groups || []).map((g) => g.result_type);
  fill(body, 
    cards(daily.totals, h('div', {class: 'card reporters'}, h('span', {class: 'label'},
      'Reporters'), h('span', {class: 'value'}, fmt.int(daily.totals.reporters)))),
    findings.status === 'fulfilled' && (findings.value.findings || []).length
      ? section('domain-findings', 'Findings', findingList(findings.value.findings)) : null,
    findings.status === 'rejected' ? problem(findings.reason, 'Findings') : null,
    h('div', {class: 'charts'}, sessionsPanel(r.days, aligned),
      failuresPanel(r.days, aligned, types)),
    policiesSection(policies, ptypes),
    resultTypesPanel(rtOrder, rtypes.totals, desc, 'domain-result-types'),
    h('div', {class: 'grid2'},
      failuresBy('sending-ips', 'Failures by sending IP', 'sending_ip', ips, 'Sending MTA IP'),
      failuresBy('mx-hosts', 'Failures by receiving MX', 'mx_host', mxs, 'Receiving MX')),
    section('reporters', 'Reporters', table({
      id: 'reporters-table',
      columns: [{label: 'Reporter', rowHeader: true}, {label: 'Successful', num: true},
        {label: 'Failed', num: true}, {label: 'Failure rate', num: true},
        {label: 'Reports', num: true}, {label: 'Last report'}],
      rows: (reporters.groups || []).map((g) => [g.reporter,
        {value: fmt.int(g.successful_sessions), class: 'successful'},
        {value: fmt.int(g.failed_sessions), class: 'failed'},
        {value: fmt.rate(g.failure_rate), class: 'rate'},
        {value: fmt.int(g.reports), class: 'reports'},
        {value: fmt.time(g.last_report), class: 'last'}]),
      rowAttrs: (reporters.groups || []).map((g) => ({'data-reporter': g.reporter})),
      empty: 'No reports in this window.',
    })));
}
