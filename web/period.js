// period.js: the time window of the Overview and Domain pages: the last N days
// (7, 30, 90, 365) up to and including an end day (today, UTC, unless the URL
// names another), as the since/until of the API ([since, until), whole days).

import {h} from './dom.js';

export const WINDOWS = [7, 30, 90, 365];
const DAY = 86400000;

function iso(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

export function today() {
  return iso(Date.now());
}

function parseDay(s) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s || '')) return null;
  const ms = Date.parse(s + 'T00:00:00Z');
  return Number.isNaN(ms) ? null : ms;
}

// From the page's URL parameters: {days, end} (end: the last day, YYYY-MM-DD).
export function periodOf(params) {
  const days = Number(params.get('days'));
  const end = params.get('end');
  return {days: WINDOWS.includes(days) ? days : 30, end: parseDay(end) !== null ? end : today()};
}

// URL parameters for a period (end only when it is not today).
export function periodParams(p) {
  const q = {days: p.days};
  if (p.end !== today()) q.end = p.end;
  return q;
}

// The findings' question for a period: as of its last day (the API's now=),
// or as of now when that day is today.
export function asOf(p) {
  return p.end !== today() ? {now: p.end} : {};
}

// {since, until, days: ['YYYY-MM-DD', ...]} of a period; back: how many windows earlier.
export function range(p, back = 0) {
  const last = parseDay(p.end) - back * p.days * DAY;
  const first = last - (p.days - 1) * DAY;
  const days = [];
  for (let t = first; t <= last; t += DAY) days.push(iso(t));
  return {since: iso(first), until: iso(last + DAY), days};
}

// The window selector and end day; onChange(period) when either changes.
export function periodControls(p, onChange) {
  const name = 'window-' + Math.random().toString(36).slice(2, 8);
  const radios = WINDOWS.flatMap((d) => {
    const id = `${name}-${d}`;
    const input = h('input', {type: 'radio', name, id, value: d, checked: d === p.days});
    input.addEventListener('change', () => onChange({days: d, end: endInput.value || p.end}));
    return [input, h('label', {for: id}, `${d} days`)];
  });
  const endInput = h('input', {type: 'date', id: `${name}-end`, value: p.end, max: today(),
    required: true});
  endInput.addEventListener('change', () => {
    if (parseDay(endInput.value) !== null) onChange({days: p.days, end: endInput.value});
  });
  return h('div', {class: 'toolbar'},
    h('fieldset', null, h('legend', null, 'Window'), h('div', {class: 'segmented'}, radios)),
    h('div', {class: 'field'}, h('label', {for: endInput.id}, 'Last day (UTC)'), endInput));
}
