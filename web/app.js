// app.js: the console's start and its router. Every page has a URL of its own
// (#/, #/domain/NAME, #/reports, #/reports/ID, #/quarantine, #/findings,
// #/record, with its parameters after "?"), so it can be linked and reloaded.
// The API decides who may look: without a token it asks for one and shows no
// data; a wrong token is said as such.

import * as api from './api.js';
import {destroyCharts} from './charts.js';
import {clear, h} from './dom.js';
import * as domain from './domain.js';
import * as findings from './findings.js';
import * as overview from './overview.js';
import * as quarantine from './quarantine.js';
import * as record from './record.js';
import * as reports from './reports.js';

const routes = [
  {re: /^\/(?:overview)?$/, page: 'overview', title: 'Overview', render: overview.render},
  {re: /^\/domain\/(.+)$/, page: 'overview', title: 'Domain', render: domain.render},
  {re: /^\/reports$/, page: 'reports', title: 'Reports', render: reports.renderList},
  {re: /^\/reports\/([^/]+)$/, page: 'reports', title: 'Report', render: reports.renderOne},
  {re: /^\/quarantine$/, page: 'quarantine', title: 'Quarantine', render: quarantine.render},
  {re: /^\/findings$/, page: 'findings', title: 'Findings', render: findings.render},
  {re: /^\/record$/, page: 'record', title: 'Record generator', render: record.render},
];

const el = (id) => document.getElementById(id);
let config = null; // GET /api/v1/config, once access is settled
let userNavigated = false;
let generation = 0;

// What the page is doing, for people with assistive technology and for tests:
// <html data-state="loading|ready|auth|blocked" data-route="HASH">.
function setState(state) {
  document.documentElement.dataset.state = state;
  document.documentElement.dataset.route = location.hash || '#/';
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  return {path: q < 0 ? raw : raw.slice(0, q), params: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1))};
}

// Go to path with params (an object), as a new history entry.
function nav(path, params) {
  const q = new URLSearchParams(params || {}).toString();
  location.hash = `#${path}${q ? '?' + q : ''}`;
}

function markNav(page) {
  for (const a of document.querySelectorAll('.top nav a'))
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
}

async function route() {
  if (!config) return;
  const mine = ++generation;
  setState('loading');
  destroyCharts();
  const {path, params} = parseHash();
  const root = h('div', {class: 'page'});
  clear(el('page')).append(root);
  let found = null, arg = null;
  for (const r of routes) {
    const m = r.re.exec(path);
    if (m) {
      found = r;
      arg = m[1] !== undefined ? decodeURIComponent(m[1]) : null;
      break;
    }
  }
  if (!found) {
    markNav(null);
    document.title = 'Not found · tlsrptd';
    root.append(h('h1', {tabindex: '-1'}, 'No such page'),
      h('p', null, 'The console has no page ', h('code', null, path), '. ',
        h('a', {href: '#/'}, 'The overview')));
    setState('ready');
    return;
  }
  markNav(found.page);
  document.title = `${arg && found.page !== 'reports' ? arg : found.title} · tlsrptd`;
  const rendering = found.render(root, params, nav, arg, config);
  if (userNavigated) {
    const h1 = root.querySelector('h1');
    if (h1) h1.focus({preventScroll: true});
  }
  try {
    await rendering;
  } catch (e) {
    root.append(h('p', {class: 'error', role: 'alert'}, `This page failed: ${e.message}`));
  }
  if (mine === generation && config) setState('ready');
}

function showAuth(err) {
  config = null;
  destroyCharts();
  clear(el('page'));
  el('blocked').hidden = true;
  el('auth').hidden = false;
  el('forget-token').hidden = true;
  const msg = el('auth-error');
  if (err && err.tokenSent) {
    api.forgetToken();
    msg.textContent = `The token was not accepted (${err.status}: ${err.detail || err.error}). ` +
      'Enter the api_token of this collector.';
    msg.hidden = false;
  } else {
    msg.textContent = '';
    msg.hidden = true;
  }
  el('auth-token').focus();
  setState('auth');
}

async function start() {
  setState('loading');
  el('auth').hidden = true;
  el('blocked').hidden = true;
  try {
    config = await api.get('/api/v1/config');
  } catch (e) {
    config = null;
    if (e.status === 401) return; // onUnauthorized showed the prompt
    clear(el('page'));
    const b = el('blocked');
    b.textContent = e.status === 403
      ? `This collector's API does not answer this address: ${e.detail} ` +
        '(set api_token in tlsrptd.conf, or open the console from the collector itself).'
      : `The collector's API did not answer: ${e.status || ''} ${e.detail || e.error}`;
    b.hidden = false;
    setState('blocked');
    return;
  }
  el('version').textContent = `tlsrptd ${config.version || ''}`.trim();
  el('forget-token').hidden = !api.token();
  await route();
}

api.onUnauthorized(showAuth);

el('auth-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = el('auth-token').value.trim();
  if (!t) return;
  api.setToken(t);
  el('auth-token').value = '';
  start();
});

el('forget-token').addEventListener('click', () => {
  api.forgetToken();
  showAuth(null);
});

el('skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  el('main').focus();
});

window.addEventListener('hashchange', () => {
  userNavigated = true;
  route();
});

start();
