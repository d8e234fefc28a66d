// The reco console: a read-only page over this process's metrics and the public API.
// No framework and no build step (the file is embedded in the binary as written). Every value
// that came from events (item and user ids) is written with textContent, never parsed as HTML.
'use strict';

const REFRESH_MS = 1500;
const TOKEN_KEY = 'reco.console.token';
const view = document.getElementById('view');
const statusLine = document.getElementById('status');
const alertLine = document.getElementById('alert');

// ---- small DOM helpers -------------------------------------------------------------------

/** el('td', {class: 'num'}, 'text', childNode…): an element with attributes and children. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function table(caption, headers, rows, attrs) {
  return el('table', attrs,
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {scope: 'col'}, h)))),
    el('tbody', {}, rows));
}

const int = (n) => Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
const dec = (n, digits) => Number.isFinite(n) ? n.toFixed(digits) : '–';
const rate = (n) => Number.isFinite(n) ? `${n >= 100 ? int(n) : dec(n, 1)}/s` : '–';
const utc = (seconds) => Number.isFinite(seconds) && seconds > 0
  ? `${new Date(seconds * 1000).toISOString().slice(0, 19)}Z` : '–';
const age = (seconds) => {
  if (!Number.isFinite(seconds)) return '–';
  if (Math.abs(seconds) < 120) return `${dec(seconds, 1)} s`;
  if (Math.abs(seconds) < 7200) return `${dec(seconds / 60, 1)} min`;
  if (Math.abs(seconds) < 172800) return `${dec(seconds / 3600, 1)} h`;
  return `${dec(seconds / 86400, 1)} d`;
};

function itemLink(id) {
  return el('a', {href: `#/item/${encodeURIComponent(id)}`}, id);
}

// ---- the API, with the tab's token -------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, options) {
  const headers = Object.assign({}, options && options.headers);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, Object.assign({cache: 'no-store'}, options, {headers}));
  if (response.status === 401) {
    askToken(token ? 'That token was refused.' : '');
    throw new Unauthorized('a token is required');
  }
  return response;
}

/** The JSON of a 2xx answer, or null with the API's error message for a 404. */
async function apiJson(path, options) {
  const response = await api(path, options);
  const body = await response.json().catch(() => null);
  if (response.ok) return {body};
  const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
  if (response.status === 404) return {body: null, message};
  throw new Error(message);
}

function askToken(message) {
  document.getElementById('token').hidden = false;
  document.getElementById('token-error').textContent = message;
  document.getElementById('token-input').focus();
}

document.getElementById('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = document.getElementById('token-input');
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = '';
  document.getElementById('token').hidden = true;
  render();
});

// ---- Prometheus text → samples -----------------------------------------------------------

/** Parses the text exposition format: [{name, labels, value}]. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
    const name = line.slice(0, i);
    const labels = {};
    if (line[i] === '{') {
      i++;
      while (i < line.length && line[i] !== '}') {
        const eq = line.indexOf('="', i);
        if (eq < 0) break;
        const key = line.slice(i, eq).replace(/^,/, '').trim();
        let value = '';
        for (i = eq + 2; i < line.length && line[i] !== '"'; i++) {
          if (line[i] === '\\') { i++; value += line[i] === 'n' ? '\n' : line[i]; } else { value += line[i]; }
        }
        labels[key] = value;
        i++;
        if (line[i] === ',') i++;
      }
      i++;
    }
    const value = Number(line.slice(i).trim().split(/\s+/)[0].replace('+Inf', 'Infinity'));
    samples.push({name, labels, value});
  }
  return samples;
}

/** Sums of one metric grouped by one label ('' groups everything): Map label value → sum. */
function by(samples, name, label) {
  const sums = new Map();
  for (const s of samples) {
    if (s.name !== name) continue;
    const key = label ? s.labels[label] : '';
    sums.set(key, (sums.get(key) || 0) + s.value);
  }
  return sums;
}

const total = (samples, name) => by(samples, name, '').get('') ?? NaN;
const has = (samples, prefix) => samples.some((s) => s.name.startsWith(prefix));

// ---- Pipeline ----------------------------------------------------------------------------

let previous = null; // {at, samples}: the reading rates are computed against

/** Per-second increase of a counter (grouped by `label`) since the previous reading. */
function rates(now, name, label) {
  const out = new Map();
  const current = by(now.samples, name, label);
  const before = previous ? by(previous.samples, name, label) : new Map();
  const seconds = previous ? (now.at - previous.at) / 1000 : 0;
  for (const [key, value] of current) {
    const delta = value - (before.get(key) ?? value);
    out.set(key, seconds > 0 ? Math.max(0, delta) / seconds : NaN);
  }
  return out;
}

function metricCell(name, value, format) {
  return el('td', {class: 'num', 'data-metric': name}, format(value));
}

function ingestRow(now) {
  const s = now.samples;
  const refused = [...by(s, 'reco_api_events_rejected_total', 'reason')].filter(([, v]) => v > 0);
  const unacked = total(s, 'reco_api_events_unacknowledged_total');
  return el('tr', {id: 'stage-ingest'},
    el('th', {scope: 'row'}, 'API ingest'),
    el('td', {class: 'num', 'data-rate': 'accepted'}, rate(rates(now, 'reco_api_events_accepted_total', '').get(''))),
    metricCell('reco_api_events_accepted_total', total(s, 'reco_api_events_accepted_total'), int),
    el('td', {}, refused.length === 0 ? 'no refusals' : el('ul', {class: 'tags'},
      refused.map(([reason, n]) => el('li', {}, `${reason}: ${int(n)}`))),
      unacked > 0 ? el('p', {class: 'warn'}, `${int(unacked)} not acknowledged by the broker`) : null));
}

function silverRows(now) {
  const s = now.samples;
  const lag = by(s, 'reco_silver_consumer_lag', 'topic');
  const rows = rates(now, 'reco_silver_rows_written_total', 'table');
  const written = by(s, 'reco_silver_rows_written_total', 'table');
  const fresh = by(s, 'reco_silver_freshness_seconds', 'table');
  const dead = total(s, 'reco_silver_deadlettered_total');
  const deadByReason = [...by(s, 'reco_silver_deadlettered_total', 'reason')].filter(([, v]) => v > 0);
  const kafka = el('tr', {id: 'stage-kafka'},
    el('th', {scope: 'row'}, 'Kafka → silver lag'),
    el('td', {class: 'num'}, `${int([...lag.values()].reduce((a, b) => a + b, 0))} records`),
    el('td', {class: 'num'}),
    el('td', {}, el('ul', {class: 'tags'}, [...lag].sort().map(([topic, n]) => el('li', {}, `${topic}: ${int(n)}`)))));
  const tables = [...written.keys()].filter((t) => !t.includes('dead')).sort();
  const silver = el('tr', {id: 'stage-silver'},
    el('th', {scope: 'row'}, 'Silver tables'),
    el('td', {class: 'num', 'data-rate': 'silver'},
      rate([...rows].filter(([t]) => !t.includes('dead')).reduce((a, [, v]) => a + v, 0))),
    metricCell('reco_silver_rows_written_total', tables.reduce((a, t) => a + written.get(t), 0), int),
    el('td', {}, el('ul', {class: 'tags'}, tables.map((t) =>
      el('li', {}, `${t}: ${int(written.get(t))} rows, ${rate(rows.get(t))}, newest event ${age(fresh.get(t))} ago`)))));
  const deadRow = el('tr', {id: 'stage-dead-letter'},
    el('th', {scope: 'row'}, 'Dead letters'),
    el('td', {class: 'num'}, rate([...rates(now, 'reco_silver_deadlettered_total', '').values()][0])),
    metricCell('reco_silver_deadlettered_total', dead, int),
    el('td', {}, deadByReason.length === 0 ? 'none' : el('ul', {class: 'tags'},
      deadByReason.map(([reason, n]) => el('li', {}, `${reason}: ${int(n)}`)))));
  return [kafka, silver, deadRow];
}

function goldRows(now) {
  const s = now.samples;
  const mark = total(s, 'reco_gold_watermark_seconds');
  // Whole seconds, as shown: a fraction of a second behind is not "holding back".
  const inputs = s.filter((x) => x.name === 'reco_gold_input_watermark_seconds')
    .map((x) => Object.assign({}, x, {value: Math.floor(x.value)}))
    .sort((a, b) => a.value - b.value);
  // The lowest input holds the watermark back; when all stand level, none is singled out.
  const lowest = inputs.length && inputs[0].value !== inputs[inputs.length - 1].value ? inputs[0].value : NaN;
  const watermark = el('tr', {id: 'stage-watermark'},
    el('th', {scope: 'row'}, 'Gold watermark'),
    el('td', {class: 'num'}, utc(mark)),
    el('td', {class: 'num'}),
    el('td', {}, inputs.length === 0 ? 'no input read yet' : el('ul', {class: 'tags'}, inputs.map((x) => el('li',
      {class: x.value === lowest ? 'holder' : null},
      `${x.labels.table}/${x.labels.partition}: ${utc(x.value)}${x.value === lowest ? ' (holds it back)' : ''}`)))));
  const published = by(s, 'reco_gold_windows_published_total', 'window');
  const provisional = by(s, 'reco_gold_windows_provisional_total', 'window');
  const late = total(s, 'reco_gold_late_events_total');
  const fresh = by(s, 'reco_gold_freshness_seconds', 'table');
  const windows = el('tr', {id: 'stage-windows'},
    el('th', {scope: 'row'}, 'Windows published'),
    el('td', {class: 'num'}, rate([...rates(now, 'reco_gold_windows_published_total', '').values()][0])),
    metricCell('reco_gold_windows_published_total', total(s, 'reco_gold_windows_published_total'), int),
    el('td', {}, el('ul', {class: 'tags'},
      [...published].sort().map(([w, n]) => el('li', {}, `${w}: ${int(n)} (${int(provisional.get(w) || 0)} provisional)`)),
      [...fresh].sort().map(([t, f]) => el('li', {}, `${t}: newest complete window ended ${age(f)} ago`)),
      late > 0 ? el('li', {}, `${int(late)} late events`) : null)));
  return [watermark, windows];
}

async function renderPipeline(container) {
  const response = await api('/console/metrics');
  if (!response.ok) throw new Error(`/console/metrics: HTTP ${response.status}`);
  const now = {at: Date.now(), samples: parseMetrics(await response.text())};
  const rows = [ingestRow(now)];
  if (has(now.samples, 'reco_silver_')) rows.push(...silverRows(now));
  if (has(now.samples, 'reco_gold_')) rows.push(...goldRows(now));
  previous = now;
  const note = has(now.samples, 'reco_silver_') ? null
    : el('p', {}, 'The silver and gold jobs run in other processes: their numbers are on their own /metrics.');
  container.append(
    el('h1', {}, 'Pipeline'),
    table('Each stage, live (refreshed every 1.5 s; rates over the last interval)',
      ['Stage', 'Now', 'Total', 'Detail'], rows, {id: 'pipeline'}));
  if (note) container.append(note);
}

// ---- Trending ----------------------------------------------------------------------------

function windowTable(w, label) {
  return el('section', {class: 'window', 'data-window': w.window, 'data-start': w.window_start,
    'data-complete': String(w.complete)},
    el('h3', {}, `${label}: ${w.window_start} – ${w.window_end}`),
    el('p', {class: w.complete ? 'ok' : 'warn'},
      w.complete ? 'Complete: the watermark passed its end.' : 'Provisional: still open, events may change it.',
      ` Computed ${w.computed_at.slice(0, 19)}Z.`),
    table(`Top ${w.items.length} of the ${w.window} window`, ['Rank', 'Item', 'Score', 'Views', 'Clicks'],
      w.items.map((i) => el('tr', {},
        el('td', {class: 'num'}, i.rank), el('td', {}, itemLink(i.item_id)), el('td', {class: 'num'}, dec(i.score, 1)),
        el('td', {class: 'num'}, int(i.views)), el('td', {class: 'num'}, int(i.clicks))))));
}

async function renderTrending(container) {
  const sections = [];
  for (const name of ['1h', '24h']) {
    const newest = await apiJson(`/trending?window=${name}&limit=20&provisional=true`);
    const parts = [el('h2', {}, `${name} window`)];
    if (!newest.body) {
      parts.push(el('p', {}, newest.message));
    } else if (newest.body.complete) {
      parts.push(windowTable(newest.body, 'Newest complete window'));
    } else {
      const complete = await apiJson(`/trending?window=${name}&limit=20`);
      parts.push(complete.body ? windowTable(complete.body, 'Newest complete window') : el('p', {}, complete.message));
      parts.push(windowTable(newest.body, 'Open window'));
    }
    sections.push(el('section', {id: `trending-${name}`}, parts));
  }
  container.replaceChildren(el('h1', {}, 'Trending now'), el('div', {class: 'columns'}, sections));
}

// ---- Explore: items, users, sessions -----------------------------------------------------

function recommendationTable(caption, items) {
  return table(caption, ['Item', 'Score', 'Because'], items.map((i) => el('tr', {},
    el('td', {}, itemLink(i.item_id)), el('td', {class: 'num'}, dec(i.score, 3)),
    el('td', {}, i.because.length === 0 ? 'trending' : i.because.flatMap((b, n) => n ? [', ', itemLink(b)] : [itemLink(b)])))),
  {class: 'recommendations'});
}

async function renderItem(container, id) {
  const similar = await apiJson(`/items/${encodeURIComponent(id)}/similar?limit=20`);
  container.replaceChildren(el('h1', {}, 'Item ', el('code', {}, id)),
    similar.body
      ? table(`Similar items (computed ${similar.body.computed_at})`, ['Rank', 'Item', 'Score', 'Support'],
        similar.body.items.map((i, n) => el('tr', {},
          el('td', {class: 'num'}, n + 1), el('td', {}, itemLink(i.item_id)),
          el('td', {class: 'num'}, dec(i.score, 3)), el('td', {class: 'num'}, int(i.support)))), {id: 'similar'})
      : el('p', {id: 'similar-none'}, similar.message),
    el('p', {}, el('a', {href: '#/explore'}, 'Explore another item or a user')));
}

async function renderUser(container, id) {
  const recs = await apiJson(`/users/${encodeURIComponent(id)}/recommendations?limit=20`);
  container.replaceChildren(el('h1', {}, 'User ', el('code', {}, id)),
    ...(recs.body ? [el('p', {}, `Source: ${recs.body.source}`),
      recommendationTable('Recommended for this user', recs.body.items)] : [el('p', {}, recs.message)]),
    el('p', {}, el('a', {href: '#/explore'}, 'Explore another item or a user')));
}

function lookupForm(id, label, placeholder, go) {
  const input = el('input', {id: `${id}-input`, name: id, required: true, placeholder, autocomplete: 'off'});
  const form = el('form', {id: `${id}-form`, class: 'lookup'}, el('label', {for: `${id}-input`}, label), input,
    el('button', {type: 'submit'}, 'Show'));
  form.addEventListener('submit', (event) => { event.preventDefault(); go(input.value.trim()); });
  return form;
}

function renderExplore(container) {
  const result = el('div', {id: 'session-result', 'aria-live': 'polite'});
  const session = lookupForm('session', 'Session items, oldest first (comma-separated)', 'm50, m51', async (text) => {
    const items = text.split(',').map((s) => s.trim()).filter(Boolean);
    try {
      const answer = await apiJson('/recommendations', {method: 'POST',
        headers: {'content-type': 'application/json'}, body: JSON.stringify({items, limit: 10})});
      result.replaceChildren(el('p', {}, `Source: ${answer.body.source}`),
        recommendationTable('Recommended for this session', answer.body.items));
    } catch (error) {
      if (!(error instanceof Unauthorized)) result.replaceChildren(el('p', {class: 'error'}, error.message));
    }
  });
  container.replaceChildren(el('h1', {}, 'Explore recommendations'),
    lookupForm('item', 'Item id', 'm50', (v) => { location.hash = `#/item/${encodeURIComponent(v)}`; }),
    lookupForm('user', 'User id', 'u9', (v) => { location.hash = `#/user/${encodeURIComponent(v)}`; }),
    session, result);
}

// ---- routing and refresh -----------------------------------------------------------------

function route() {
  const [, name = 'pipeline', ...rest] = location.hash.split('/');
  return {name, arg: decodeURIComponent(rest.join('/'))};
}

let timer = null;
let shown = '';
let generation = 0; // a newer render makes an older one, still waiting on the API, drop its result

/** Puts `next`'s children in the view unless they equal what is shown: a refresh that
 * changed nothing leaves focus, selection and screen readers alone. */
function show(next) {
  const same = view.childNodes.length === next.childNodes.length
    && [...view.childNodes].every((node, i) => node.isEqualNode(next.childNodes[i]));
  if (!same) view.replaceChildren(...next.childNodes);
}

function report(error) {
  alertLine.textContent = error ? (error instanceof Unauthorized ? 'A token is required.' : `Error: ${error.message}`) : '';
  if (!error) statusLine.textContent = `updated ${new Date().toLocaleTimeString('en-GB')}`;
}

async function render() {
  clearTimeout(timer);
  const gen = ++generation;
  const {name, arg} = route();
  for (const link of document.querySelectorAll('nav a')) {
    const views = {pipeline: 'pipeline', trending: 'trending'};
    if ((views[name] || 'explore') === link.dataset.view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const fresh = location.hash !== shown;
  shown = location.hash;
  // The explore forms keep what is typed: drawn once per visit, not refreshed.
  if (name === 'explore') {
    if (fresh) renderExplore(view);
    report(null);
    return;
  }
  const draw = {pipeline: renderPipeline, trending: renderTrending,
    item: (c) => renderItem(c, arg), user: (c) => renderUser(c, arg)}[name];
  if (!draw) {
    view.replaceChildren(el('h1', {}, 'Not found'), el('p', {}, el('a', {href: '#/pipeline'}, 'Pipeline')));
    return;
  }
  const next = el('div');
  try {
    await draw(next);
    if (gen !== generation) return;
    show(next);
    report(null);
  } catch (error) {
    if (gen !== generation) return;
    report(error);
    // Waiting for a token: the form's submit renders again.
    if (error instanceof Unauthorized) return;
  }
  timer = setTimeout(render, REFRESH_MS);
}

window.addEventListener('hashchange', () => { previous = null; render(); view.focus(); });
render();
