// quarantine.js: inputs that were not accepted (GET /api/v1/quarantine): the
// reason, where they came from and when, the raw bytes to download, and
// re-ingest (POST, after a fix or a new version of tlsrptd).

import * as api from './api.js';
import {badge, fill, fmt, h, loading, problem, table} from './dom.js';

const PAGE = 50;

function sourceText(s) {
  if (!s) return '—';
  return [s.kind, s.name, s.client, s.message_id && `Message-ID ${s.message_id}`,
    s.report_domain && `domain ${s.report_domain}`, s.submitter && `submitter ${s.submitter}`]
    .filter(Boolean).join(' · ');
}

function filename(headers, id) {
  const cd = headers.get('Content-Disposition') || '';
  const m = /filename="?([^";]+)"?/.exec(cd);
  return m ? m[1] : `quarantine-${id}.raw`;
}

function downloadButton(e) {
  const b = h('button', {type: 'button', class: 'secondary small',
    'aria-label': `Download the raw input of quarantine entry ${e.id}`}, 'Download');
  if (!e.raw_kept) {
    b.disabled = true;
    b.title = 'the raw bytes were not kept';
  }
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      const {blob, headers} = await api.download(`/api/v1/quarantine/${e.id}/raw`);
      const url = URL.createObjectURL(blob);
      const a = h('a', {href: url, download: filename(headers, e.id), class: 'skip'});
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      b.after(problem(err, 'Download'));
    }
    b.disabled = false;
  });
  return b;
}

function reingestButton(e) {
  const out = h('span', {class: 'small', role: 'status'});
  const b = h('button', {type: 'button', class: 'small',
    'aria-label': `Re-ingest quarantine entry ${e.id}`}, 'Re-ingest');
  b.addEventListener('click', async () => {
    b.disabled = true;
    fill(out, '…');
    try {
      const res = await api.post(`/api/v1/quarantine/${e.id}/reingest`);
      const kind = res.result === 'stored' ? 'ok' : res.result === 'duplicate' ? 'info' : 'critical';
      fill(out, ' ', badge(kind, res.result), res.reason ? ` ${res.reason}` : '');
    } catch (err) {
      fill(out, problem(err, 'Re-ingest'));
    }
    b.disabled = false;
  });
  return h('span', null, b, out);
}

export async function render(root, params) {
  const page = Math.max(1, Number(params.get('page')) || 1);
  root.append(h('h1', {tabindex: '-1'}, 'Quarantine'),
    h('p', {class: 'muted'}, 'Inputs that were not stored, with the reason. Nothing is lost: ' +
      'download one to look at it, or re-ingest it.'));
  const body = root.appendChild(h('section', {class: 'panel'}, loading()));
  let res;
  try {
    res = await api.get('/api/v1/quarantine', {limit: PAGE, offset: (page - 1) * PAGE});
  } catch (e) {
    fill(body, problem(e, 'The quarantine'));
    return;
  }
  const list = res.entries || [];
  const offset = (page - 1) * PAGE;
  fill(body, 
    h('p', {id: 'quarantine-count'}, `${fmt.int(res.total)} entries`),
    table({
      id: 'quarantine-table',
      columns: [{label: 'ID', num: true}, {label: 'Received'}, {label: 'Reason'},
        {label: 'Source'}, {label: 'Size', num: true}, {label: 'Raw input'}, {label: 'Again'}],
      rows: list.map((e) => [String(e.id), fmt.time(e.received_at),
        {value: e.reason, class: 'wrap'}, {value: sourceText(e.source), class: 'wrap'},
        fmt.bytes(e.raw_size), downloadButton(e), reingestButton(e)]),
      rowAttrs: list.map((e) => ({'data-id': e.id})),
      empty: 'The quarantine is empty.',
    }),
    h('nav', {class: 'pager', 'aria-label': 'Pages of the quarantine'},
      page > 1 ? h('a', {class: 'button secondary', href: `#/quarantine?page=${page - 1}`},
        'Previous') : null,
      offset + list.length < res.total ? h('a', {class: 'button secondary',
        href: `#/quarantine?page=${page + 1}`}, 'Next') : null));
}
