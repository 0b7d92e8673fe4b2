import { createHash } from 'node:crypto'

/*
 * The dashboard page: one document, no external resources (it must work on an air-gapped host), readable in light
 * and dark mode (prefers-color-scheme), usable with a keyboard and a screen reader (tables with captions and
 * header cells, charts as labelled images with their numbers in text beside them, status never by colour alone).
 * It polls GET /api/summary and renders with textContent only: certificate subjects and route names are data,
 * never markup. The script and style are pinned by hash in the Content-Security-Policy.
 * No template literals and no "${" in the script below: it lives inside one.
 */

const STYLE = `
:root { color-scheme: light dark; --bg: #fbfbfc; --fg: #1b1d21; --muted: #5b6170; --line: #d9dce3; --card: #ffffff;
  --accent: #1f5fbf; --ok: #1d7a3a; --warn: #8a5300; --warn-bg: #fff3d6; --bad: #b3261e; --bad-bg: #fde7e5; --bar: #1f5fbf; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #111318; --fg: #e6e8ee; --muted: #a2a8b6; --line: #30343e; --card: #181b22;
    --accent: #8ab4ff; --ok: #6fd28f; --warn: #ffcf70; --warn-bg: #3a2e10; --bad: #ff8a80; --bad-bg: #3d1c1a; --bar: #8ab4ff; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; padding: .8rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 1.15rem; margin: 0; }
header p { margin: 0; color: var(--muted); }
main { padding: 1rem 1.2rem 2rem; display: grid; gap: 1.2rem; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; overflow-x: auto; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; color: var(--muted); padding-bottom: .3rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px/1.3 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
ol.chain { margin: 0; padding-left: 1.2rem; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 .4rem; border-radius: 4px; font-weight: 600; font-size: 12px; }
.ok { color: var(--ok); }
.flag { background: var(--warn-bg); color: var(--warn); }
.bad { background: var(--bad-bg); color: var(--bad); }
tr.flagged td, tr.flagged th { background: var(--warn-bg); }
tr.expired td, tr.expired th { background: var(--bad-bg); }
svg.spark { display: block; }
svg.spark rect { fill: var(--bar); }
svg.spark line { stroke: var(--line); }
pre { white-space: pre-wrap; background: var(--bg); border: 1px solid var(--line); padding: .5rem; border-radius: 6px; font-size: 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
`

const SCRIPT = `
'use strict';
(function () {
  var POLL_MS = 2000;
  var $ = function (id) { return document.getElementById(id); };
  function el (tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function cell (row, text, cls) { var td = el('td', text, cls); row.appendChild(td); return td; }
  function days (d) { var n = Math.ceil(d); return n === 1 ? '1 day' : n + ' days'; }
  function fmt (n, d) { return n === null || n === undefined ? '–' : Number(n).toFixed(d === undefined ? 1 : d); }
  function when (iso) { if (!iso) return '–'; var d = new Date(iso); return d.toLocaleString(); }
  function ago (iso, now) {
    var s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
    return s < 60 ? s + ' s ago' : s < 3600 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago';
  }
  function spark (series, slotSeconds, what) {
    var NS = 'http://www.w3.org/2000/svg', w = 144, h = 28;
    var svg = document.createElementNS(NS, 'svg');
    var max = 0, sum = 0, last = series.length ? series[series.length - 1] : 0;
    for (var i = 0; i < series.length; i++) { if (series[i] > max) max = series[i]; sum += series[i]; }
    svg.setAttribute('class', 'spark'); svg.setAttribute('width', w); svg.setAttribute('height', h);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h); svg.setAttribute('role', 'img');
    var minutes = Math.round(series.length * slotSeconds / 60);
    svg.setAttribute('aria-label', what + ' per ' + slotSeconds + ' s over the last ' + minutes + ' minutes: ' + sum + ' in all, at most ' + max + ' in one interval, ' + last + ' in the latest');
    var base = document.createElementNS(NS, 'line');
    base.setAttribute('x1', 0); base.setAttribute('x2', w); base.setAttribute('y1', h - 0.5); base.setAttribute('y2', h - 0.5);
    svg.appendChild(base);
    var bw = w / Math.max(1, series.length);
    for (var k = 0; k < series.length; k++) {
      if (!series[k]) continue;
      var bh = Math.max(1, Math.round(series[k] / max * (h - 2)));
      var r = document.createElementNS(NS, 'rect');
      r.setAttribute('x', (k * bw).toFixed(2)); r.setAttribute('y', h - bh);
      r.setAttribute('width', Math.max(1, bw - 0.5).toFixed(2)); r.setAttribute('height', bh);
      svg.appendChild(r);
    }
    return svg;
  }
  function replaceBody (id, rows, empty, cols) {
    var tb = $(id); tb.textContent = '';
    if (rows.length === 0) { var tr = el('tr'); var td = cell(tr, empty, 'muted'); td.colSpan = cols; tb.appendChild(tr); return; }
    for (var i = 0; i < rows.length; i++) tb.appendChild(rows[i]);
  }
  function classes (o) { return ['2xx', '3xx', '4xx', '5xx'].map(function (k) { return k + ' ' + (o[k] || 0); }).join(' · '); }

  function render (s) {
    var now = new Date(s.generated_at).getTime(), slot = s.window.slot_seconds;
    var g = s.gateway;
    $('gw').textContent = 'version ' + g.version + ' · config ' + g.config_hash.slice(0, 12) + ' · up ' + g.uptime_s + ' s' + (g.workers !== undefined ? ' · ' + g.workers + ' workers' : '');
    var ready = $('ready'); ready.textContent = g.ready ? 'ready' : 'not ready: ' + (g.reasons || []).join('; ');
    ready.className = 'badge ' + (g.ready ? 'ok' : 'bad');
    $('updated').textContent = 'updated ' + new Date(s.generated_at).toLocaleTimeString();

    replaceBody('routes', s.routes.map(function (r) {
      var tr = el('tr');
      var th = el('th', r.name); th.scope = 'row'; tr.appendChild(th);
      var m = cell(tr, '');
      // a route without a service is one no longer in the config, or "(none)": requests that matched no route
      var where = !r.service ? '–' : (r.hosts.length ? r.hosts.join(', ') : 'any host') + ' ' + (r.paths.length ? r.paths.join(', ') : '/');
      m.appendChild(el('code', where));
      if (r.methods.length) m.appendChild(el('div', r.methods.join(' '), 'muted'));
      var sv = cell(tr, r.service ? r.service.name : '–');
      if (r.service) sv.appendChild(el('div', r.service.url, 'muted'));
      var pc = cell(tr, r.plugins.length ? '' : 'none', r.plugins.length ? '' : 'muted');
      if (r.plugins.length) { var ol = el('ol', null, 'chain'); r.plugins.forEach(function (p) { ol.appendChild(el('li', p)); }); pc.appendChild(ol); }
      cell(tr, fmt(r.rps, 2), 'num');
      cell(tr, classes(r.status_recent));
      cell(tr, fmt(r.p50_ms), 'num');
      cell(tr, fmt(r.p99_ms), 'num');
      cell(tr, r.requests_total, 'num');
      cell(tr, '').appendChild(spark(r.series, slot, 'requests'));
      return tr;
    }), 'no routes', 10);

    replaceBody('refusals', s.refusals.map(function (r) {
      var tr = el('tr');
      var th = el('th', r.reason); th.scope = 'row'; tr.appendChild(th);
      cell(tr, '').appendChild(el('code', r.cause ? r.code + ' \u00b7 ' + r.cause : r.code));
      cell(tr, r.status === undefined || r.status === null ? '–' : r.status, 'num');
      cell(tr, r.recent, 'num');
      cell(tr, r.total, 'num');
      cell(tr, '').appendChild(spark(r.series, slot, 'refusals'));
      return tr;
    }), 'nothing refused yet', 6);

    replaceBody('certs', s.certificates.map(function (c) {
      var tr = el('tr', null, c.expired ? 'expired' : c.expiring_soon ? 'flagged' : '');
      var th = el('th', c.subject); th.scope = 'row'; tr.appendChild(th);
      cell(tr, c.issuer);
      cell(tr, '').appendChild(el('code', c.x5t_s256));
      cell(tr, [c.consumer, c.client_id].filter(Boolean).join(' / ') || '–');
      var ex = cell(tr, c.not_after.slice(0, 10) + ' ');
      if (c.expired) ex.appendChild(el('span', 'expired', 'badge bad'));
      else if (c.expiring_soon) ex.appendChild(el('span', 'expires in ' + days(c.days_left), 'badge flag'));
      else ex.appendChild(el('span', 'in ' + days(c.days_left), 'muted'));
      cell(tr, ago(c.last_seen, now));
      cell(tr, c.requests, 'num');
      return tr;
    }), 'no client certificate seen yet', 7);

    var as = s.authorization_server;
    $('as-none').hidden = as !== null;
    $('as-table').hidden = as === null;
    if (as !== null) {
      replaceBody('as', as.clients.map(function (c) {
        var tr = el('tr');
        var th = el('th', c.client_id); th.scope = 'row'; tr.appendChild(th);
        cell(tr, c.name || '–');
        cell(tr, c.auth_method);
        cell(tr, c.tokens_issued, 'num');
        cell(tr, c.tokens_revoked, 'num');
        cell(tr, c.last_issued_at ? ago(c.last_issued_at, now) : '–');
        return tr;
      }), 'no clients', 6);
    }

    var rl = s.reloads;
    $('reload-counts').textContent = rl.applied + ' applied, ' + rl.refused + ' refused since start';
    replaceBody('reloads', rl.recent.map(function (e) {
      var tr = el('tr');
      var th = el('th', when(e.at)); th.scope = 'row'; tr.appendChild(th);
      cell(tr, '').appendChild(el('span', e.result, 'badge ' + (e.result === 'applied' ? 'ok' : 'bad')));
      cell(tr, e.config_hash ? e.config_hash.slice(0, 12) : '–');
      return tr;
    }), 'no reload yet', 3);
    var lr = rl.last_refusal;
    $('last-refusal').hidden = lr === null;
    if (lr !== null) { $('last-refusal-at').textContent = when(lr.at); $('last-refusal-errors').textContent = lr.errors || ''; }

    var st = s.store, dl = $('store'); dl.textContent = '';
    [['backend', st.backend], ['connected', st.connected === undefined ? '–' : st.connected ? 'yes' : 'no'],
      ['latency', st.latency_ms === undefined ? '–' : fmt(st.latency_ms, 2) + ' ms'], ['detail', st.detail || '–']].forEach(function (p) {
      dl.appendChild(el('dt', p[0])); dl.appendChild(el('dd', p[1]));
    });
  }

  function poll () {
    // a background tab does not poll; it catches up when shown
    if (document.hidden) { setTimeout(poll, POLL_MS); return; }
    fetch('api/summary', { cache: 'no-store', credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (s) { render(s); $('conn').textContent = ''; }, function (e) {
      $('conn').textContent = 'cannot reach the gateway (' + e.message + '); retrying';
    }).then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
`

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('base64')

/** Only the page's own inline script and style run; it may talk to its own origin only (fetch of /api/summary). */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${sha256(SCRIPT)}'`,
  `style-src 'sha256-${sha256(STYLE)}'`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>certbound admin</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>certbound</h1>
  <p id="gw">loading…</p>
  <p><span id="ready" class="badge">…</span></p>
  <p id="updated" aria-live="off"></p>
  <p id="conn" role="status" aria-live="polite"></p>
</header>
<main>
<section aria-labelledby="h-routes">
  <h2 id="h-routes">Routes</h2>
  <table>
    <caption>Routes in the live config; rates, status classes and latency over the last minute, chart over the last minutes</caption>
    <thead><tr><th scope="col">Route</th><th scope="col">Hosts / paths</th><th scope="col">Service</th><th scope="col">Plugins (execution order)</th>
      <th scope="col" class="num">req/s</th><th scope="col">Status (last min)</th><th scope="col" class="num">p50 ms</th><th scope="col" class="num">p99 ms</th>
      <th scope="col" class="num">Total</th><th scope="col">Requests</th></tr></thead>
    <tbody id="routes"></tbody>
  </table>
</section>
<section aria-labelledby="h-refusals">
  <h2 id="h-refusals">Refusals by reason</h2>
  <table>
    <caption>Requests answered with an error, by stable error code and sub-reason (err and err_cause in the access log), and TLS handshakes refused</caption>
    <thead><tr><th scope="col">Reason</th><th scope="col">Code</th><th scope="col" class="num">Status</th><th scope="col" class="num">Last min</th><th scope="col" class="num">Total</th><th scope="col">Over time</th></tr></thead>
    <tbody id="refusals"></tbody>
  </table>
</section>
<section aria-labelledby="h-certs">
  <h2 id="h-certs">Client certificates seen</h2>
  <table>
    <caption>Soonest expiry first; those expiring within 30 days are flagged</caption>
    <thead><tr><th scope="col">Subject</th><th scope="col">Issuer</th><th scope="col">Thumbprint (x5t#S256)</th><th scope="col">Consumer / client_id</th>
      <th scope="col">Expires</th><th scope="col">Last seen</th><th scope="col" class="num">Requests</th></tr></thead>
    <tbody id="certs"></tbody>
  </table>
</section>
<section aria-labelledby="h-as">
  <h2 id="h-as">Authorization server clients</h2>
  <p id="as-none" class="muted" hidden>The built-in authorization server is not configured.</p>
  <table id="as-table" hidden>
    <caption>Registered clients and the access tokens issued to them and revoked</caption>
    <thead><tr><th scope="col">client_id</th><th scope="col">Name</th><th scope="col">Authentication</th><th scope="col" class="num">Tokens issued</th><th scope="col" class="num">Revoked</th><th scope="col">Last issued</th></tr></thead>
    <tbody id="as"></tbody>
  </table>
</section>
<section aria-labelledby="h-reloads">
  <h2 id="h-reloads">Config reloads</h2>
  <p id="reload-counts"></p>
  <table>
    <caption>The most recent reloads</caption>
    <thead><tr><th scope="col">When</th><th scope="col">Result</th><th scope="col">Config</th></tr></thead>
    <tbody id="reloads"></tbody>
  </table>
  <div id="last-refusal" hidden>
    <h3>Last refused reload, <span id="last-refusal-at"></span></h3>
    <pre id="last-refusal-errors"></pre>
  </div>
</section>
<section aria-labelledby="h-store">
  <h2 id="h-store">Store</h2>
  <dl id="store"></dl>
</section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`
