// reports.js: the stored reports, filtered by domain, reporter and dates
// (GET /api/v1/reports, paged), and one report (GET /api/v1/reports/ID): its
// source and the DKIM verdict of its mail, warnings and notes, policies, and
// the JSON as the sender sent it.

import * as api from './api.js';
import {badge, copyButton, fill, fmt, h, loading, problem, table} from './dom.js';

const PAGE = 50;
const DKIM_BADGE = {pass: 'ok', fail: 'critical', temperror: 'warning', none: 'none'};

// The DKIM verdict of a mailed report (the API's "dkim": null for reports that
// did not come by mail, or when dkim = off) as a badge: pass, fail, none, temperror.
function dkimBadge(d) {
  if (!d || !d.result) return h('span', {class: 'muted'}, '—');
  return badge(DKIM_BADGE[d.result] || 'info', d.result);
}

// The verdict with its signing domain (d=), alignment and reason, as `tlsrptd show` says it.
function dkimFacts(d) {
  if (!d || !d.result)
    return facts([['Verdict', 'no verdict: not a mail, or dkim = off']], 'report-dkim');
  const hasDomain = d.domain !== null && d.domain !== undefined && d.domain !== '';
  return facts([['Verdict', dkimBadge(d)],
    ['Signing domain', hasDomain ? h('code', null, d.domain) : null],
    ['Aligned', hasDomain ? (d.aligned
      ? 'yes: it is the TLS-Report-Submitter and From domain, or a parent of them'
      : 'no: it is not the TLS-Report-Submitter and From domain, nor a parent of them')
      : null],
    ['Why', d.reason]], 'report-dkim');
}

function nextDay(day) {
  const ms = Date.parse(day + 'T00:00:00Z');
  return Number.isNaN(ms) ? null : new Date(ms + 86400000).toISOString().slice(0, 10);
}

function filterForm(f, nav) {
  const input = (name, label, type, hint) => {
    const el = h('input', {type, id: `reports-${name}`, name, value: f[name] || '',
      autocomplete: 'off', spellcheck: 'false', placeholder: hint || null});
    return [el, h('div', {class: 'field'}, h('label', {for: el.id}, label), el)];
  };
  const [domain, dField] = input('domain', 'Domain', 'search', 'every domain');
  const [reporter, rField] = input('reporter', 'Reporter', 'search', 'every reporter');
  const [since, sField] = input('since', 'From (UTC)', 'date');
  const [until, uField] = input('until', 'To (UTC, included)', 'date');
  const form = h('form', {class: 'toolbar', 'aria-label': 'Filter the reports'},
    dField, rField, sField, uField, h('button', {type: 'submit'}, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = {};
    for (const el of [domain, reporter, since, until]) if (el.value.trim()) q[el.name] = el.value.trim();
    nav('/reports', q);
  });
  return form;
}

export async function renderList(root, params, nav) {
  const f = Object.fromEntries(['domain', 'reporter', 'since', 'until']
    .map((k) => [k, params.get(k) || '']));
  const page = Math.max(1, Number(params.get('page')) || 1);
  root.append(h('h1', {tabindex: '-1'}, 'Reports'), filterForm(f, nav));
  const body = root.appendChild(h('section', {class: 'panel'}, loading()));
  const q = {limit: PAGE, offset: (page - 1) * PAGE};
  if (f.domain) q.domain = f.domain;
  if (f.reporter) q.reporter = f.reporter;
  if (f.since) q.since = f.since;
  if (f.until) q.until = nextDay(f.until) || f.until;
  let res;
  try {
    res = await api.get('/api/v1/reports', q);
  } catch (e) {
    fill(body, problem(e, 'The reports'));
    return;
  }
  const list = res.reports || [];
  const first = list.length ? q.offset + 1 : 0;
  const pageLink = (n, text) => {
    const p = Object.assign({}, Object.fromEntries(Object.entries(f).filter(([, v]) => v)),
      n > 1 ? {page: n} : {});
    return h('a', {class: 'button secondary', href: `#/reports?${new URLSearchParams(p)}`}, text);
  };
  fill(body, 
    h('p', {id: 'reports-count'}, list.length
      ? `Reports ${fmt.int(first)}–${fmt.int(q.offset + list.length)} of ${fmt.int(res.total)}`
      : `${fmt.int(res.total)} reports`),
    table({
      id: 'reports-table',
      columns: [{label: 'ID', num: true}, {label: 'Start'}, {label: 'Reporter'},
        {label: 'Report ID'}, {label: 'Domains'}, {label: 'Successful', num: true},
        {label: 'Failed', num: true}, {label: 'Warnings', num: true}, {label: 'Source'},
        {label: 'DKIM'}],
      rows: list.map((r) => [h('a', {href: `#/reports/${r.id}`}, String(r.id)),
        fmt.day(r.start_datetime), {value: r.organization_name, class: 'wrap'},
        {value: r.report_id, class: 'clip mono', attrs: {title: r.report_id}},
        {value: (r.policy_domains || []).map(fmt.domain).join(', '), class: 'wrap'},
        {value: fmt.int(r.successful_sessions), class: 'successful'},
        {value: fmt.int(r.failed_sessions), class: 'failed'}, fmt.int(r.warnings),
        r.source ? r.source.kind : '—', {value: dkimBadge(r.dkim), class: 'dkim'}]),
      rowAttrs: list.map((r) => ({'data-id': r.id})),
      empty: 'No stored report matches.',
    }),
    h('nav', {class: 'pager', 'aria-label': 'Pages of reports'},
      page > 1 ? pageLink(page - 1, 'Previous') : null,
      q.offset + list.length < res.total ? pageLink(page + 1, 'Next') : null));
}

function facts(pairs, id) {
  return h('dl', {class: 'facts', id: id || null},
    pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

function policyRows(report) {
  const rows = [];
  for (const p of (report && report.policies) || []) {
    const pol = p.policy || {};
    const sum = p.summary || {};
    const mx = Array.isArray(pol['mx-host']) ? pol['mx-host'].join(', ') : pol['mx-host'];
    rows.push([h('code', null, pol['policy-type'] || '—'), fmt.domain(pol['policy-domain']),
      {value: mx || '—', class: 'wrap'}, fmt.int(sum['total-successful-session-count']),
      fmt.int(sum['total-failure-session-count']),
      {value: Array.isArray(p['failure-details']) ? p['failure-details'].map((d) =>
        `${d['result-type']} ${fmt.int(d['failed-session-count'])}` +
        (d['receiving-mx-hostname'] ? ` (${d['receiving-mx-hostname']})` : '')).join(', ') : '—',
      class: 'wrap'}]);
  }
  return rows;
}

export async function renderOne(root, params, nav, id) {
  root.append(h('h1', {tabindex: '-1'}, `Report ${id}`),
    h('p', null, h('a', {href: '#/reports'}, 'All reports')));
  const body = root.appendChild(h('div', {class: 'stack'}, loading()));
  let r;
  try {
    r = await api.get(`/api/v1/reports/${encodeURIComponent(id)}`);
  } catch (e) {
    fill(body, problem(e, `Report ${id}`));
    return;
  }
  const src = r.source || {};
  const json = JSON.stringify(r.report, null, 2);
  const diags = r.diagnostics || [];
  fill(body, 
    h('div', {class: 'grid2'},
      h('section', {class: 'panel', 'aria-labelledby': 'report-title'},
        h('h2', {id: 'report-title'}, 'Report'),
        facts([['Reporter', r.organization_name], ['Report ID', r.report_id],
          ['From', fmt.time(r.start_datetime)], ['To', fmt.time(r.end_datetime)],
          ['Contact', r.contact_info], ['Received', fmt.time(r.received_at)],
          ['Stored as', `report ${r.id}`]])),
      h('section', {class: 'panel', 'aria-labelledby': 'source-title'},
        h('h2', {id: 'source-title'}, 'Source'),
        facts([['Arrived by', src.kind], ['Name', src.name], ['Client', src.client],
          ['Message-ID', src.message_id], ['TLS-Report-Domain', src.report_domain || src.domain],
          ['TLS-Report-Submitter', src.submitter], ['Subject', src.subject]]),
        h('h3', {id: 'dkim-title'}, 'DKIM signature'), dkimFacts(r.dkim))),
    h('section', {class: 'panel', 'aria-labelledby': 'diag-title'},
      h('h2', {id: 'diag-title'}, 'Warnings and notes'),
      table({
        id: 'diagnostics',
        columns: [{label: 'Level'}, {label: 'Where'}, {label: 'What'}],
        rows: diags.map((d) => [badge(d.level === 'warning' ? 'warning' : 'info', d.level),
          h('code', null, d.path || '—'), {value: d.message, class: 'wrap'}]),
        empty: 'None: the report follows RFC 8460.',
      })),
    h('section', {class: 'panel', 'aria-labelledby': 'pol-title'},
      h('h2', {id: 'pol-title'}, 'Policies'),
      table({
        id: 'report-policies',
        columns: [{label: 'Type'}, {label: 'Domain'}, {label: 'MX hosts'},
          {label: 'Successful', num: true}, {label: 'Failed', num: true}, {label: 'Failures'}],
        rows: policyRows(r.report),
        empty: 'No policies.',
      })),
    h('section', {class: 'panel', 'aria-labelledby': 'json-title'},
      h('div', {class: 'inline'}, h('h2', {id: 'json-title'}, 'The report as received'),
        copyButton(() => json, 'the report JSON')),
      h('pre', {class: 'block', id: 'report-json', tabindex: '0',
        'aria-labelledby': 'json-title'}, json)));
}
