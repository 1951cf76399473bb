// status.js: how the console words a domain's numbers: its status, its trend
// against the previous window, and the meaning and fix of a result type (as
// the API describes them in the summary's "result_types").

import {badge, h} from './dom.js';

// OK: no failed session; Failures: a failure rate below 5 %;
// Failing: 5 % or more; No sessions: nothing reported.
export function status(g) {
  if (!g || (!g.successful_sessions && !g.failed_sessions)) return badge('none', 'No sessions');
  if (!g.failed_sessions) return badge('ok', 'OK');
  if ((g.failure_rate || 0) >= 0.05) return badge('critical', 'Failing');
  return badge('warning', 'Failures');
}

// The change of the failure rate from the previous window, in percentage points.
export function trend(cur, prev, days) {
  if (!prev || !(prev.successful_sessions + prev.failed_sessions))
    return h('span', {class: 'trend new', title: `no sessions in the ${days} days before`}, 'new');
  const pp = ((cur.failure_rate || 0) - (prev.failure_rate || 0)) * 100;
  const words = `failure rate ${pp > 0 ? 'up' : 'down'} ${Math.abs(pp).toFixed(2)} percentage ` +
    `points from the ${days} days before`;
  if (Math.abs(pp) < 0.005)
    return h('span', {class: 'trend steady', title: `failure rate as in the ${days} days before`},
      '= steady');
  return h('span', {class: `trend ${pp > 0 ? 'up' : 'down'}`, title: words, 'aria-label': words},
    `${pp > 0 ? '▲ +' : '▼ −'}${Math.abs(pp).toFixed(2)} pp`);
}

// {type: {meaning, fix, rfc}} from any of the summaries given.
export function descriptions(...summaries) {
  const out = {};
  for (const s of summaries) Object.assign(out, (s && s.result_types) || {});
  return out;
}

export function meaning(desc, type) {
  const d = desc[type];
  return d && d.meaning ? d.meaning : '—';
}

export function fix(desc, type) {
  const d = desc[type];
  return d && d.fix ? d.fix : '—';
}
