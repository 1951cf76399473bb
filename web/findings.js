// findings.js: what the collector concluded (GET /api/v1/findings, computed on
// the server): plain sentences with their severity, domain, since when, and
// the reports that show it; as of now, or as of the end of a day the URL
// names (end=, the API's now=), to look back at a past incident.

import * as api from './api.js';
import {badge, fill, fmt, h, loading, problem} from './dom.js';
import {asOf, periodOf, today} from './period.js';

const ORDER = {critical: 0, warning: 1, info: 2};

function bySeverity(findings) {
  return findings.slice().sort((a, b) =>
    (ORDER[a.severity] ?? 3) - (ORDER[b.severity] ?? 3) ||
    fmt.domain(a.domain).localeCompare(fmt.domain(b.domain)));
}

// The findings as a list, most severe first, then by domain.
export function findingList(findings) {
  return h('ul', {class: 'findings'}, bySeverity(findings).map((f) => {
    const ids = (f.evidence && f.evidence.reports) || [];
    return h('li', {'data-kind': f.kind, 'data-severity': f.severity},
      badge(f.severity === 'critical' ? 'critical' : f.severity === 'warning' ? 'warning' : 'info',
        f.severity || 'info'), ' ',
      h('span', {class: 'text'}, f.text),
      h('div', {class: 'muted small'},
        f.domain !== undefined ? h('a', {class: 'domain',
          href: `#/domain/${encodeURIComponent(fmt.domain(f.domain))}`}, fmt.domain(f.domain))
          : null,
        f.since ? ` · since ${fmt.time(f.since)}` : '',
        ids.length ? [' · evidence: ', ids.slice(0, 10).map((id, i) =>
          [i ? ', ' : '', h('a', {href: `#/reports/${encodeURIComponent(id)}`}, `report ${id}`)]),
        ids.length > 10 ? ` and ${ids.length - 10} more` : ''] : ''));
  }));
}

// "as of now (2026-12-01 14:44 UTC)" or "as of 2025-04-30 (UTC)", from the API's answer.
export function asOfText(res, end) {
  return end && end !== today() ? `as of ${end} (UTC)` : `as of now (${fmt.time(res.now)})`;
}

export async function render(root, params, nav) {
  const domain = params.get('domain') || '';
  const p = periodOf(params);
  const input = h('input', {type: 'search', id: 'findings-domain', value: domain,
    placeholder: 'every domain', autocomplete: 'off', spellcheck: 'false'});
  const endInput = h('input', {type: 'date', id: 'findings-end', value: p.end, max: today(),
    required: true});
  const form = h('form', {class: 'toolbar', 'aria-label': 'Which findings'},
    h('div', {class: 'field'}, h('label', {for: 'findings-domain'}, 'Domain'), input),
    h('div', {class: 'field'}, h('label', {for: 'findings-end'}, 'As of (UTC)'),
      endInput),
    h('button', {type: 'submit'}, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = {};
    if (input.value.trim()) q.domain = input.value.trim();
    if (endInput.value && endInput.value !== today()) q.end = endInput.value;
    nav('/findings', q);
  });
  root.append(h('h1', {tabindex: '-1'}, 'Findings'),
    h('p', {class: 'muted'}, 'What the reports suggest doing, computed by the collector ' +
      '(also: tlsrptd summary --findings [--now DAY]).'), form);
  const body = root.appendChild(h('section', {class: 'panel'}, loading()));
  try {
    const res = await api.get('/api/v1/findings', Object.assign(domain ? {domain} : {},
      asOf(p)));
    const list = res.findings || [];
    fill(body, h('p', {id: 'findings-as-of', class: 'muted small'},
      `${list.length} ${list.length === 1 ? 'finding' : 'findings'} ${asOfText(res, p.end)}`),
    list.length ? findingList(list) : h('p', {class: 'muted'}, 'Nothing to act on.'));
  } catch (e) {
    fill(body, problem(e, 'Findings'));
  }
}
