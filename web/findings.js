// findings.js: what the collector concluded (GET /api/v1/findings, computed on
// the server): plain sentences with their severity, domain, since when, and
// the reports that show it.

import * as api from './api.js';
import {badge, fill, fmt, h, loading, problem} from './dom.js';

const ORDER = {critical: 0, warning: 1, info: 2};

export function findingList(findings) {
  const sorted = findings.slice().sort((a, b) =>
    (ORDER[a.severity] ?? 3) - (ORDER[b.severity] ?? 3) ||
    fmt.domain(a.domain).localeCompare(fmt.domain(b.domain)));
  return h('ul', {class: 'findings'}, sorted.map((f) => {
    const ids = (f.evidence && f.evidence.reports) || [];
    return h('li', {'data-kind': f.kind, 'data-severity': f.severity},
      badge(f.severity === 'critical' ? 'critical' : f.severity === 'warning' ? 'warning' : 'info',
        f.severity || 'info'), ' ',
      h('span', {class: 'text'}, f.text),
      h('div', {class: 'muted small'},
        f.domain !== undefined ? h('a', {href: `#/domain/${encodeURIComponent(fmt.domain(f.domain))}`},
          fmt.domain(f.domain)) : null,
        f.since ? ` · since ${fmt.time(f.since)}` : '',
        ids.length ? [' · evidence: ', ids.slice(0, 10).map((id, i) =>
          [i ? ', ' : '', h('a', {href: `#/reports/${encodeURIComponent(id)}`}, `report ${id}`)]),
        ids.length > 10 ? ` and ${ids.length - 10} more` : ''] : ''));
  }));
}

export async function render(root, params, nav) {
  const domain = params.get('domain') || '';
  const input = h('input', {type: 'search', id: 'findings-domain', value: domain,
    placeholder: 'every domain', autocomplete: 'off', spellcheck: 'false'});
  const form = h('form', {class: 'toolbar'},
    h('div', {class: 'field'}, h('label', {for: 'findings-domain'}, 'Domain'), input),
    h('button', {type: 'submit'}, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    nav('/findings', input.value.trim() ? {domain: input.value.trim()} : {});
  });
  root.append(h('h1', {tabindex: '-1'}, 'Findings'),
    h('p', {class: 'muted'}, 'What the reports suggest doing, computed by the collector ' +
      '(also: tlsrptd summary --findings).'), form);
  const body = root.appendChild(h('section', {class: 'panel'}, loading()));
  try {
    const res = await api.get('/api/v1/findings', domain ? {domain} : {});
    const list = res.findings || [];
    fill(body, list.length ? findingList(list)
      : h('p', {class: 'muted'}, 'Nothing to act on.'));
  } catch (e) {
    fill(body, problem(e, 'Findings'));
  }
}
