// record.js: the record generator. The fields of the web generators (domain,
// https endpoints, mail addresses, TTL, and the MTA-STS companion), prefilled
// with this collector's public_url and report_mailbox; as you type, the
// server makes the record with exactly the rules and messages of
// `tlsrptd record` (GET /api/v1/record): Name, Type, TTL, Value and the
// zone-file line with copy buttons, or the command's error. "Check the live
// record" is `tlsrptd record --check` (GET /api/v1/record/check).

import * as api from './api.js';
import {badge, copyButton, field, fill, h} from './dom.js';

const DEBOUNCE_MS = 250;

// A list of text inputs with add and remove buttons.
function inputList(id, label, values, placeholder, onInput) {
  const list = h('div', {class: 'stack', id: `${id}-list`});
  let count = 0;
  const add = (value) => {
    const n = count++;
    const input = h('input', {type: 'text', id: `${id}-${n}`, value: value || '', placeholder,
      autocomplete: 'off', spellcheck: 'false', 'data-list': id, inputmode: 'url'});
    input.addEventListener('input', onInput);
    const remove = h('button', {type: 'button', class: 'secondary small',
      'aria-label': `Remove ${label.toLowerCase()} ${n + 1}`}, 'Remove');
    const row = h('div', {class: 'field'}, h('label', {for: input.id}, `${label} ${n + 1}`),
      h('div', {class: 'inline'}, input, remove));
    remove.addEventListener('click', () => {
      row.remove();
      onInput();
    });
    list.append(row);
    return input;
  };
  (values.length ? values : ['']).forEach((v) => add(v));
  const more = h('button', {type: 'button', class: 'secondary small', id: `${id}-add`},
    `Add ${label.replace(/^[A-Z][a-z]/, (m) => m.toLowerCase())}`);
  more.addEventListener('click', () => {
    add('').focus();
  });
  return {list, more, values: () => [...list.querySelectorAll('input')].map((i) => i.value.trim())
    .filter((v) => v !== '')};
}

function mailto(v) {
  return /^mailto:/i.test(v) ? v : `mailto:${v}`;
}

// Name, Type, TTL and Value of one record, each value with a copy button.
function recordFacts(id, r) {
  const copyRow = (cls, text, what) => h('div', {class: 'copy-row'},
    h('code', {class: cls}, text), copyButton(() => text, what));
  return h('dl', {class: 'facts record', id},
    h('dt', null, 'Name'), h('dd', null, copyRow('name', r.name, 'the name')),
    h('dt', null, 'Type'), h('dd', {class: 'type'}, r.type),
    h('dt', null, 'TTL'), h('dd', {class: 'ttl'}, String(r.ttl)),
    h('dt', null, 'Value'), h('dd', null, copyRow('value', r.value, 'the value')));
}

function zoneBlock(id, title, zone) {
  return h('div', null, h('h3', {id: `${id}-title`}, title),
    h('div', {class: 'copy-row'}, h('pre', {class: 'block wrap', id, 'aria-labelledby':
      `${id}-title`}, zone), copyButton(() => zone, title.toLowerCase())));
}

export async function render(root, params, nav, _arg, config) {
  const cfg = config || {};
  let version = 0; // of the form: a newer one outdates an answer on its way
  let timer = null;
  const output = h('section', {class: 'panel output', id: 'rec-output', 'aria-live': 'polite',
    'aria-labelledby': 'rec-output-title', 'data-state': 'idle'},
  h('h2', {id: 'rec-output-title'}, 'Record'), h('p', {class: 'muted'},
    'Type the domain; the record appears here.'));
  const checkOut = h('section', {id: 'rec-check', class: 'panel', 'aria-live': 'polite',
    'data-state': 'idle', hidden: true});
  const schedule = () => {
    version++;
    output.dataset.state = 'pending';
    if (checkOut.dataset.state === 'done') { // about another record: gone
      checkOut.hidden = true;
      checkOut.dataset.state = 'idle';
      fill(checkOut);
    }
    clearTimeout(timer);
    timer = setTimeout(update, DEBOUNCE_MS);
  };

  const domain = h('input', {type: 'text', value: params.get('domain') || '', autocomplete: 'off',
    spellcheck: 'false', placeholder: 'example.com', inputmode: 'url'});
  domain.addEventListener('input', schedule);
  const https = inputList('rec-https', 'HTTPS endpoint', cfg.public_url ? [cfg.public_url] : [],
    'https://tlsrpt.example.net/tlsrpt', schedule);
  const mail = inputList('rec-mailto', 'Mail address',
    cfg.report_mailbox ? [cfg.report_mailbox.replace(/^mailto:/i, '')] : [],
    'tlsrpt@example.net', schedule);
  const ttl = h('input', {type: 'text', value: '3600', inputmode: 'numeric', autocomplete: 'off'});
  ttl.addEventListener('input', schedule);
  const sts = h('input', {type: 'checkbox', id: 'rec-sts'});
  const mx = h('textarea', {rows: 3, spellcheck: 'false', placeholder: 'mx1.example.com'});
  const mode = h('select', null, ['testing', 'enforce', 'none'].map((m) =>
    h('option', {value: m}, m)));
  const maxAge = h('input', {type: 'text', value: '604800', inputmode: 'numeric',
    autocomplete: 'off'});
  const stsSet = h('fieldset', {id: 'rec-sts-fields', disabled: true, hidden: true},
    h('legend', null, 'MTA-STS policy'),
    field('rec-mx', 'MX hosts', mx, 'One per line (or separated by spaces or commas); ' +
      '*.example.com is allowed.'),
    h('div', {class: 'row'}, field('rec-mode', 'Mode', mode),
      field('rec-max-age', 'max_age (seconds)', maxAge)));
  for (const el of [mx, mode, maxAge]) el.addEventListener('input', schedule);
  sts.addEventListener('change', () => {
    stsSet.disabled = stsSet.hidden = !sts.checked;
    schedule();
  });
  const fields = {domain, rua: null, ttl, mx, mode, max_age: maxAge};

  // The query of both calls: what the form says, as `tlsrptd record` arguments.
  const request = () => {
    const q = {domain: domain.value.trim()};
    const rua = https.values().concat(mail.values().map(mailto));
    if (rua.length) q.rua = rua;
    return q;
  };
  const generateQuery = () => {
    const q = request();
    if (ttl.value.trim()) q.ttl = ttl.value.trim();
    if (sts.checked) {
      q.mta_sts = 1;
      q.mx = mx.value.split(/[\s,]+/).filter(Boolean);
      q.mode = mode.value;
      if (maxAge.value.trim()) q.max_age = maxAge.value.trim();
    }
    q.explain = 1;
    return q;
  };

  async function update() {
    const mine = version;
    const q = generateQuery();
    for (const el of [domain, ttl, mx, mode, maxAge, ...root.querySelectorAll('[data-list]')])
      el.removeAttribute('aria-invalid');
    let res;
    try {
      res = await api.get('/api/v1/record', q);
    } catch (e) {
      if (mine !== version) return;
      const target = e.body && e.body.field === 'rua'
        ? root.querySelectorAll('[data-list]') : [fields[e.body && e.body.field]];
      for (const el of target) if (el) el.setAttribute('aria-invalid', 'true');
      fill(output, h('h2', {id: 'rec-output-title'}, 'Record'),
        h('p', {class: 'error', id: 'rec-error', role: 'alert'}, e.detail || e.message));
      output.dataset.state = 'done';
      return;
    }
    if (mine !== version) return;
    const parts = [h('h2', {id: 'rec-output-title'}, 'Record'),
      recordFacts('rec-table', res), zoneBlock('rec-zone', 'Zone-file line', res.zone)];
    if ((res.notes || []).length)
      parts.push(h('ul', {class: 'notes', id: 'rec-notes'}, res.notes.map((n) => h('li', null, n))));
    if (res.mta_sts) {
      const s = res.mta_sts;
      parts.push(h('h2', null, 'MTA-STS'), recordFacts('rec-sts-table', s),
        zoneBlock('rec-sts-zone', 'MTA-STS zone-file line', s.zone),
        h('h3', {id: 'rec-policy-title'}, 'Policy file'),
        h('p', {class: 'small'}, 'Serve this as text/plain at ', h('code', {id: 'rec-policy-url'},
          s.policy_url), ' (lines end in CRLF).'),
        h('div', {class: 'copy-row'}, h('pre', {class: 'block', id: 'rec-policy',
          'aria-labelledby': 'rec-policy-title'}, s.policy), copyButton(() => s.policy,
          'the policy file')));
    }
    fill(output, ...parts);
    output.dataset.state = 'done';
  }

  const checkButton = h('button', {type: 'button', id: 'rec-check-button'},
    'Check the live record');
  checkButton.addEventListener('click', async () => {
    checkButton.disabled = true;
    checkOut.dataset.state = 'pending';
    checkOut.hidden = false;
    fill(checkOut, h('p', {class: 'loading'}, 'Asking DNS…'));
    try {
      const v = await api.get('/api/v1/record/check', request());
      const kind = v.verdict === 'reaches' ? 'ok' : v.verdict === 'lookup-failed' ? 'warning'
        : 'critical';
      fill(checkOut, h('h2', null, 'The live record'),
        h('p', {id: 'rec-check-verdict'}, badge(kind, v.verdict), ' ', v.message),
        h('pre', {class: 'block wrap', id: 'rec-check-text'}, v.text));
    } catch (e) {
      fill(checkOut, h('p', {class: 'error', role: 'alert', id: 'rec-check-error'},
        e.detail || e.message));
    }
    checkOut.dataset.state = 'done';
    checkButton.disabled = false;
  });

  const form = h('form', {class: 'panel', id: 'rec-form', 'aria-labelledby': 'rec-form-title'},
    h('h2', {id: 'rec-form-title'}, 'Your domain'),
    field('rec-domain', 'Domain', domain, 'The policy domain, as DNS has it (A-labels: ' +
      'xn--…); _smtp._tls. is put in front.'),
    h('div', {class: 'grid2'},
      h('fieldset', null, h('legend', null, 'HTTPS endpoints (rua=https:)'), https.list,
        https.more),
      h('fieldset', null, h('legend', null, 'Mail addresses (rua=mailto:)'), mail.list,
        mail.more)),
    h('p', {class: 'hint'}, 'Empty: this collector\'s public_url and report_mailbox. ' +
      'More than two destinations draw a warning: some senders deliver to the first only.'),
    h('div', {class: 'row short'}, field('rec-ttl', 'TTL (seconds)', ttl)),
    h('p', {class: 'check'}, sts, h('label', {for: 'rec-sts'}, 'Also the MTA-STS record and ' +
      'policy file (RFC 8461)')),
    stsSet,
    h('div', {class: 'inline'}, checkButton));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    schedule();
  });
  root.append(h('h1', {tabindex: '-1'}, 'Record generator'),
    h('p', {class: 'muted'}, 'The _smtp._tls TXT record (RFC 8460 §3) that sends a domain\'s ' +
      'TLS reports here. The collector checks every field as tlsrptd record does.'),
    h('div', {class: 'grid2'}, form, h('div', {class: 'stack'}, output, checkOut)));
  if (domain.value.trim()) schedule();
}
