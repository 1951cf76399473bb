// dom.js: building the page from data without markup strings (text is always
// text, never HTML), number and date formats, tables, copy buttons.

// h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child, [more]) -> element.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replace el's children (null, undefined and false are left out).
export function fill(el, ...children) {
  return append(clear(el), children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

const intFormat = new Intl.NumberFormat('en-US', {maximumFractionDigits: 0});

export const fmt = {
  // 12345 -> "12,345"; null -> "—"
  int(n) { return n === null || n === undefined ? '—' : intFormat.format(n); },
  // 0.0058 -> "0.58%" (as `tlsrptd summary` prints it); null -> "—"
  rate(r) { return r === null || r === undefined ? '—' : (r * 100).toFixed(2) + '%'; },
  // "2026-11-03T00:00:00Z" -> "2026-11-03 00:00 UTC"
  time(s) {
    if (!s) return '—';
    const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(s);
    return m ? `${m[1]} ${m[2]} UTC` : s;
  },
  day(s) { return s ? String(s).slice(0, 10) : '—'; },
  bytes(n) {
    if (n === null || n === undefined) return '—';
    if (n < 1024) return `${n} B`;
    if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1048576).toFixed(1)} MiB`;
  },
  domain(d) { return d === null || d === undefined || d === '' ? '(none)' : d; },
};

// table({caption, columns: [{label, num}], rows: [[cell, ...]], rowAttrs: [attrs]})
// A cell is text, a node, or {value, class, attrs}.
export function table({caption, columns, rows, rowAttrs, empty, id}) {
  const head = h('tr', null, columns.map((c) =>
    h('th', {scope: 'col', class: c.num ? 'num' : null}, c.label)));
  const body = h('tbody');
  rows.forEach((row, i) => {
    const tr = h('tr', rowAttrs ? rowAttrs[i] : null);
    row.forEach((cell, k) => {
      const col = columns[k] || {};
      const plain = cell === null || typeof cell !== 'object' || cell instanceof Node;
      const cls = [col.num ? 'num' : '', col.class || '', plain ? '' : cell.class || '']
        .filter(Boolean).join(' ');
      const attrs = Object.assign({class: cls || null}, plain ? null : cell.attrs);
      tr.append(h(k === 0 && col.rowHeader ? 'th' : 'td',
        Object.assign(attrs, k === 0 && col.rowHeader ? {scope: 'row'} : {}),
        plain ? cell : cell.value));
    });
    body.append(tr);
  });
  if (!rows.length && empty)
    body.append(h('tr', null, h('td', {colspan: columns.length, class: 'muted'}, empty)));
  return h('div', {class: 'table-wrap'},
    h('table', {id}, caption ? h('caption', null, caption) : null, h('thead', null, head), body));
}

// A button that copies text() to the clipboard and says so.
export function copyButton(text, what) {
  const b = h('button', {type: 'button', class: 'secondary small', 'aria-label': `Copy ${what}`},
    'Copy');
  b.addEventListener('click', async () => {
    const value = text();
    let done = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(value);
        done = true;
      }
    } catch (e) {
      done = false;
    }
    if (!done) {
      const ta = h('textarea', {class: 'skip', 'aria-hidden': 'true'});
      ta.value = value;
      document.body.append(ta);
      ta.select();
      try { done = document.execCommand('copy'); } catch (e) { done = false; }
      ta.remove();
    }
    b.textContent = done ? 'Copied' : 'Select and copy';
    setTimeout(() => { b.textContent = 'Copy'; }, 1500);
  });
  return b;
}

export function badge(kind, text) {
  return h('span', {class: `badge ${kind}`}, text);
}

// A labelled form field: field('id', 'Label', input, 'hint')
export function field(id, label, input, hint) {
  input.id = id;
  const hintEl = hint ? h('p', {class: 'hint', id: `${id}-hint`}, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', {class: 'field'}, h('label', {for: id}, label), input, hintEl);
}

export function loading(text) {
  return h('p', {class: 'loading'}, text || 'Loading…');
}

// The message of a failed API call, for people.
export function problem(e, what) {
  if (e && e.status === 404 && e.endpointMissing)
    return h('p', {class: 'notice'}, `${what}: this collector's API does not offer ${e.path} yet ` +
      `(404: ${e.detail || 'not found'}).`);
  const text = e && e.status ? `${what}: ${e.status} ${e.error || ''}` +
    (e.detail ? ` — ${e.detail}` : '') : `${what}: ${e && e.message ? e.message : e}`;
  return h('p', {class: 'error', role: 'alert'}, text);
}
