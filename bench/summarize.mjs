#!/usr/bin/env node
// Summarize a bench/run.sh result directory (results.jsonl, env.json, rss.jsonl, notes.jsonl) into markdown:
// the main table with ratios against HAProxy (S2) and the direct upstream (S0), a details table, and the
// goals of issue 5 checked against this run.
// Adapted from ../shared/anchors-bench/summarize.mjs (certbound reference harness): medians, noise flags and the
// details table come from there; the ratio columns, the goals section and the S5p/S6 rows are new.
// usage: node summarize.mjs bench/results/<stamp> [--json]
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.argv[2]
if (!dir) { console.error('usage: summarize.mjs RESULT_DIR [--json]'); process.exit(2) }
const jsonl = (f) => existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []
const rows = jsonl('results.jsonl')
const rssRows = jsonl('rss.jsonl')
const notes = jsonl('notes.jsonl')
const pairedRows = jsonl('paired.jsonl')
const placement = jsonl('placement.jsonl')
const env = existsSync(join(dir, 'env.json')) ? JSON.parse(readFileSync(join(dir, 'env.json'), 'utf8')) : {}

const NAMES = {
  S0: 'S0 direct upstream (plain HTTP)',
  S1: 'S1 nginx mTLS proxy, no token check',
  S2: 'S2 HAProxy 2.6 full chain',
  S3t: 'S3t Node TLS floor (handshake + canned 200)',
  S4: 'S4 naive Node proxy, 1 proc',
  S4k: 'S4k naive Node + verified-token map, 1 proc',
  S5p: 'S5p certbound mTLS proxy, no plugin',
  S5: 'S5 certbound full chain, 1 proc',
  S6: 'S6 certbound token-introspection (warm cache)',
  S5c: 'S5c certbound full chain, workers: 2 (unpinned)',
  S5rl: 'S5rl certbound full chain + rate-limiting (local)',
  S5rr: 'S5rr certbound full chain + rate-limiting (redis)',
  S5r: 'S5r certbound full chain, gateway.store.redis',
  S5d: 'S5d certbound DPoP chain (ES256 proof per request), memory store',
  S5dr: 'S5dr certbound DPoP chain, gateway.store.redis (jti replay in Redis)',
}
const median = (xs) => {
  const v = xs.filter((x) => x != null && !Number.isNaN(x)).sort((a, b) => a - b)
  if (!v.length) return null
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}
const fmt = (x, d = 0) => (x == null || Number.isNaN(x) ? '-' : Number(x).toFixed(d))
const k = (x) => (x == null ? '-' : x >= 10000 ? (x / 1000).toFixed(1) + 'k' : String(Math.round(x)))
const ratio = (a, b) => (a == null || b == null || !b ? null : a / b)
const rx = (x) => (x == null ? '-' : x.toFixed(2) + '×')

const groups = new Map()
for (const r of rows) {
  const key = `${r.label}|${r.mode}`
  if (!groups.has(key)) groups.set(key, [])
  groups.get(key).push(r)
}
const order = Object.keys(NAMES)
const keys = [...groups.keys()].sort((a, b) => {
  const [sa, ma] = a.split('|'); const [sb, mb] = b.split('|')
  const MODE_ORDER = ['ka', 'hs', 'rs']
  return (MODE_ORDER.indexOf(ma) - MODE_ORDER.indexOf(mb)) || (order.indexOf(sa) - order.indexOf(sb))
})

const NOISY = 25 // % of one core used by other processes: the row's req/s and latencies are suspect
const otherCpu = (r) => r.cores
  ? Object.values(r.cores).reduce((t, c) => t + c.busy_pct, 0) - r.loadgen_cpu_pct - Object.values(r.cpu).reduce((t, c) => t + c.cpu_pct, 0)
  : null
const sut = (r) => r.cpu.proxy ?? r.cpu.upstream // S0: the upstream is the system under test
const summary = keys.map((key) => {
  const rs = groups.get(key)
  const [label, mode] = key.split('|')
  const rps = rs.map((r) => r.rps)
  const us = median(rs.map((r) => sut(r)?.us_per_req))
  const cores = Object.keys(rs[0].cores || {})
  const rss = rssRows.filter((x) => x.label === label && x.mode === mode).flatMap((x) => x.rss_mb)
  return {
    label, mode, runs: rs.length, connections: rs[0].connections,
    rps: median(rps), rps_min: Math.min(...rps), rps_max: Math.max(...rps),
    p50: median(rs.map((r) => r.lat_ms.p50)), p99: median(rs.map((r) => r.lat_ms.p99)),
    non2xx: rs.reduce((s, r) => s + r.non2xx, 0), errors: rs.reduce((s, r) => s + r.errors + r.timeouts, 0),
    tls_resumed: rs.reduce((s, r) => s + (r.tls_resumed || 0), 0),
    requests: rs.reduce((s, r) => s + (r.requests || 0), 0),
    tls_group: rs[0].tls?.group ?? null,
    sut_cpu_pct: median(rs.map((r) => sut(r)?.cpu_pct)), sut_us_per_req: us,
    per_core_capacity: us ? Math.round(1e6 / us) : null,
    upstream_us_per_req: median(rs.map((r) => r.cpu.upstream?.us_per_req)),
    idp_cpu_pct: median(rs.map((r) => r.cpu.issuer?.cpu_pct ?? r.cpu.idp?.cpu_pct)),
    loadgen_cpu_pct: median(rs.map((r) => r.loadgen_cpu_pct)),
    other_cpu_pct: median(rs.map((r) => r.other_cpu_pct ?? otherCpu(r))),
    rss_max_mb: rss.length ? Math.max(...rss) : null,
    cores: Object.fromEntries(cores.map((c) => [c, { busy: median(rs.map((r) => r.cores[c].busy_pct)), steal: median(rs.map((r) => r.cores[c].steal_pct)) }])),
  }
})
const get = (label, mode) => summary.find((r) => r.label === label && r.mode === mode)
for (const r of summary) {
  const h = get('S2', r.mode); const d = get('S0', r.mode)
  r.vs_haproxy = h && r.label !== 'S2' ? { cpu: ratio(r.sut_us_per_req, h.sut_us_per_req), p99: ratio(r.p99, h.p99), rps: ratio(r.rps, h.rps) } : null
  r.vs_direct = d && r.label !== 'S0' ? { rps: ratio(r.rps, d.rps), p99: ratio(r.p99, d.p99) } : null
}

// ---- paired runs: certbound S5 and one anchor loaded at the same time on the same core (run.sh PAIRED)
for (const r of pairedRows) r.mode ??= 'ka' // runs before PAIR_MODES were keep-alive only
const paired = [...new Set(pairedRows.map((r) => `${r.anchor}|${r.mode}`))].map((key) => {
  const [anchor, mode] = key.split('|')
  const rs = pairedRows.filter((r) => r.anchor === anchor && r.mode === mode)
  return {
    anchor, mode, runs: rs.length,
    ratios: rs.map((r) => r.certbound_us / r.anchor_us),
    ratio: median(rs.map((r) => r.certbound_us / r.anchor_us)),
    anchor_us: median(rs.map((r) => r.anchor_us)), certbound_us: median(rs.map((r) => r.certbound_us)),
    anchor_rps: median(rs.map((r) => r.anchor_rps)), certbound_rps: median(rs.map((r) => r.certbound_rps)),
    anchor_p99: median(rs.map((r) => r.anchor_p99)), certbound_p99: median(rs.map((r) => r.certbound_p99)),
    p99_ratio: median(rs.map((r) => r.certbound_p99 / r.anchor_p99)),
    failed: rs.reduce((t, r) => t + r.anchor_non2xx + r.certbound_non2xx, 0),
  }
})

// ---- goals of issue 5, checked against this run
const goals = []
const goal = (name, value, ok, detail) => goals.push({ name, value, ok, detail })
{
  const s5 = get('S5', 'ka'); const s2 = get('S2', 'ka')
  if (s5 && s2) {
    goal('proxy CPU per request ≤ 0.5× HAProxy (ka, 1 process)', rx(s5.vs_haproxy.cpu), s5.vs_haproxy.cpu <= 0.5, `${fmt(s5.sut_us_per_req)} vs ${fmt(s2.sut_us_per_req)} µs/req`)
    goal('p99 ≤ HAProxy (ka, same load)', rx(s5.vs_haproxy.p99), s5.vs_haproxy.p99 <= 1, `${fmt(s5.p99, 2)} vs ${fmt(s2.p99, 2)} ms`)
  }
  const h5 = get('S5', 'hs'); const h2 = get('S2', 'hs')
  if (h5 && h2) goal('new-handshake mode ≥ 0.9× HAProxy handshakes/s', rx(h5.vs_haproxy.rps), h5.vs_haproxy.rps >= 0.9, `${k(h5.rps)} vs ${k(h2.rps)} req/s`)
  const r5 = get('S5', 'rs'); const r2 = get('S2', 'rs')
  if (r5 && r2) goal('resumed handshakes: no slower than HAProxy (req/s)', rx(r5.vs_haproxy.rps), r5.vs_haproxy.rps >= 1, `${k(r5.rps)} vs ${k(r2.rps)} req/s; resumed ${r5.tls_resumed} of ${r5.requests} vs ${r2.tls_resumed} of ${r2.requests}`)
  const c = get('S5c', 'ka'); const one = get('S5', 'ka')
  if (c && one) {
    const g = ratio(c.rps, one.rps)
    goal('gateway.workers: 2 — throughput grows with cores (ka)', rx(g), g > 1.05, `${k(c.rps)} vs ${k(one.rps)} req/s (load generator + upstream share the second core)`)
  }
  const i6 = get('S6', 'ka')
  if (i6 && one) {
    const cr = ratio(i6.sut_us_per_req, one.sut_us_per_req); const rr = ratio(i6.rps, one.rps)
    goal('warm-cache token-introspection within 10 % of local JWT validation (ka)', `CPU ${rx(cr)}, req/s ${rx(rr)}`, cr <= 1.1 && rr >= 0.9, `${fmt(i6.sut_us_per_req)} vs ${fmt(one.sut_us_per_req)} µs/req`)
  }
  // issue 15: rate-limiting's price, against S5 in the same run
  for (const [sc, max, what] of [['S5rl', 1.05, 'policy local'], ['S5rr', 1.2, 'policy redis']]) {
    const r = get(sc, 'ka')
    if (r && one) {
      const cr = ratio(r.sut_us_per_req, one.sut_us_per_req)
      goal(`rate-limiting ${what}: CPU per request ≤ ${max}× the chain alone (ka)`, rx(cr), cr <= max, `${fmt(r.sut_us_per_req)} vs ${fmt(one.sut_us_per_req)} µs/req`)
    }
  }
  // issue 13: the same chain with its state in Redis, against the memory store in the same run
  const sr = get('S5r', 'ka')
  if (sr && one) {
    const cr = ratio(sr.sut_us_per_req, one.sut_us_per_req); const pr = ratio(sr.p99, one.p99)
    goal('gateway.store.redis: CPU per request ≤ 1.15× the memory store (S5r ÷ S5, ka)', rx(cr), cr <= 1.15, `${fmt(sr.sut_us_per_req)} vs ${fmt(one.sut_us_per_req)} µs/req`)
    goal('gateway.store.redis: p99 ≤ 1.2× the memory store (S5r ÷ S5, ka)', rx(pr), pr <= 1.2, `${fmt(sr.p99, 2)} vs ${fmt(one.p99, 2)} ms`)
  }
  // issue 14: DPoP (a proof signature verified per request) against HAProxy's full mTLS chain (a JWT signature per
  // request), and the jti replay check in Redis against the memory store
  const d5 = get('S5d', 'ka'); const h2k = get('S2', 'ka')
  if (d5 && h2k) goal('DPoP chain: CPU per request ≤ 1.0× HAProxy\'s full mTLS chain (S5d ÷ S2, ka)', rx(d5.vs_haproxy.cpu), d5.vs_haproxy.cpu <= 1, `${fmt(d5.sut_us_per_req)} vs ${fmt(h2k.sut_us_per_req)} µs/req`)
  const dr = get('S5dr', 'ka')
  if (dr && d5) {
    const cr = ratio(dr.sut_us_per_req, d5.sut_us_per_req)
    goal('DPoP replay check in Redis: CPU per request ≤ 1.15× the memory store (S5dr ÷ S5d, ka)', rx(cr), cr <= 1.15, `${fmt(dr.sut_us_per_req)} vs ${fmt(d5.sut_us_per_req)} µs/req; p99 ${fmt(dr.p99, 2)} vs ${fmt(d5.p99, 2)} ms`)
  }
  if (dr && h2k) goal('DPoP chain with Redis: CPU per request vs HAProxy (S5dr ÷ S2, ka; no goal of its own)', rx(dr.vs_haproxy.cpu), null, `${fmt(dr.sut_us_per_req)} vs ${fmt(h2k.sut_us_per_req)} µs/req`)
  for (const p of paired) {
    if (p.anchor === 'S2' && p.mode === 'hs') goal('new-handshake CPU per connection vs HAProxy (paired, hs)', rx(p.ratio), p.ratio <= 1 / 0.9, `${fmt(p.certbound_us)} vs ${fmt(p.anchor_us)} µs/req; ≤ 1.11× is the CPU side of "≥ 0.9× HAProxy's handshake rate"`)
    if (p.anchor === 'S2' && p.mode === 'rs') goal('resumed-handshake CPU vs HAProxy (paired, rs)', rx(p.ratio), p.ratio <= 1, `${fmt(p.certbound_us)} vs ${fmt(p.anchor_us)} µs/req`)
    if (p.anchor === 'S2' && p.mode === 'ka') {
      goal('proxy CPU per request ≤ 0.5× HAProxy (paired: both at the same time on one core)', rx(p.ratio), p.ratio <= 0.5, `${fmt(p.certbound_us)} vs ${fmt(p.anchor_us)} µs/req, median of ${p.runs} (per-run ratios ${p.ratios.map((x) => x.toFixed(2)).join(' ')})`)
      goal('p99 ≤ HAProxy (paired, same load at the same time)', rx(p.p99_ratio), p.p99_ratio <= 1, `${fmt(p.certbound_p99, 2)} vs ${fmt(p.anchor_p99, 2)} ms`)
    }
  }
  const rssMax = Math.max(...summary.filter((r) => /^S5|^S6/.test(r.label) && r.rss_max_mb != null).map((r) => r.rss_max_mb))
  if (Number.isFinite(rssMax)) goal('RSS under load < 150 MB per process (after each run; the 5-minute flatness is bench/soak.sh)', `${fmt(rssMax)} MB`, rssMax < 150, 'largest certbound process seen')
}

if (process.argv.includes('--json')) { console.log(JSON.stringify({ env, summary, paired, goals, notes }, null, 1)); process.exit(0) }

const s = env.settings || {}
console.log(`### certbound benchmark, ${env.date_utc ?? ''}`)
console.log()
console.log(`${env.host_cpus ?? '?'} cores (${env.cpu_model ?? '?'}), kernel ${env.kernel ?? '?'}, load before ${env.loadavg_before?.map((x) => x.toFixed(2)).join(' ') ?? '?'}; ` +
  `${env.nginx ?? ''}, ${env.haproxy ?? ''}, node ${env.node ?? ''} (OpenSSL ${env.node_openssl ?? ''}), ${env.system_openssl ?? ''}; ` +
  `autocannon ${env.autocannon ?? ''}, jose ${env.jose ?? ''}; certbound ${env.certbound?.package ?? '?'} (${env.certbound?.commit ?? '?'}).`)
console.log(`Median of ${s.runs ?? '?'} run(s). ka = keep-alive, ${s.conns_ka ?? '?'} connections, ${s.dur_ka ?? '?'} s; ` +
  `hs = new TCP + full TLS 1.3 mTLS handshake per request, ${s.conns_hs ?? '?'} connections, ${s.dur_hs ?? '?'} s; ` +
  `rs = the same, each connection resuming the previous one's session ticket. ` +
  `Proxy pinned to cpu${s.sut_cpu ?? '?'}; load generator + upstream nginx (+ issuer/IdP) on cpu${s.rig_cpu ?? '?'} (S0: upstream on cpu${s.sut_cpu ?? '?'}; S5c unpinned).`)
console.log()
console.log('Settings of this run (what the figures mean):')
console.log()
console.log('| setting | value |')
console.log('|---|---|')
const setting = (n, v) => { if (v != null && v !== '') console.log(`| ${n} | ${String(v).replaceAll('|', '/')} |`) }
setting('load generator', s.loadgen)
setting('connections', `ka ${s.conns_ka}, hs/rs ${s.conns_hs}${s.paired ? `; paired runs ka ${s.conns_ka / 2}, hs/rs ${s.conns_hs / 2} per side` : ''}`)
setting('measured window', `ka ${s.dur_ka} s, hs/rs ${s.dur_hs} s, ${s.warmup > 0 ? `after a ${s.warmup} s warm-up in the first round` : 'no warm-up'}; ${s.runs} round(s)${s.paired ? `; paired ${s.pair_runs} × ${s.dur_pair} s per mode (${s.pair_modes ?? 'ka'}) beside ${s.paired}` : ''}`)
setting('pinning', `proxy cpu${s.sut_cpu}, load generator + upstream + issuer cpu${s.rig_cpu}; checked: ${placement.length ? (placement.every((p) => p.pinned_as_stated) ? `every measured process of ${placement.length} scenario start(s) had exactly the affinity stated` : 'NOT as stated for ' + placement.filter((p) => !p.pinned_as_stated).map((p) => p.label).join(', ')) : 'not recorded'}`)
setting('proxy CPU', s.proxy_cpu)
setting('logging', s.logging)
setting('measured build', `${env.certbound?.dir ?? '?'} at ${env.certbound?.commit ?? '?'}, started as \`${['node', env.certbound?.node_flags ?? '', 'bin/certbound.js start'].filter(Boolean).join(' ')}\` (no npx: see bench/README.md, "One honest benchmark")`)
const groupsSeen = [...new Set(summary.map((r) => r.tls_group).filter(Boolean))]
setting('TLS', `TLS 1.3, key exchange ${groupsSeen.join('/') || '?'} (as negotiated), the server sends its leaf certificate only`)
console.log()
console.log('| scenario | mode | req/s | p50 ms | p99 ms | proxy CPU µs/req | ≈ req/s per proxy core | non-2xx | errors | CPU ÷ HAProxy | p99 ÷ HAProxy | req/s ÷ HAProxy | req/s ÷ direct |')
console.log('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
for (const r of summary) {
  console.log(`| ${NAMES[r.label] ?? r.label} | ${r.mode} | ${k(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.sut_us_per_req)} | ${k(r.per_core_capacity)} | ${r.non2xx} | ${r.errors} | ` +
    `${rx(r.vs_haproxy?.cpu)} | ${rx(r.vs_haproxy?.p99)} | ${rx(r.vs_haproxy?.rps)} | ${rx(r.vs_direct?.rps)} |`)
}
if (paired.length) {
  console.log()
  console.log(`#### Paired: certbound S5 beside an anchor, both loaded at the same time on cpu${s.sut_cpu ?? '?'} (half the connections each)`)
  console.log()
  console.log('| anchor | mode | runs | anchor µs/req | certbound µs/req | certbound ÷ anchor (median of per-run ratios) | per-run ratios | anchor req/s | certbound req/s | anchor p99 ms | certbound p99 ms | non-2xx + errors |')
  console.log('|---|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|')
  for (const p of paired) {
    console.log(`| ${NAMES[p.anchor] ?? p.anchor} | ${p.mode} | ${p.runs} | ${fmt(p.anchor_us)} | ${fmt(p.certbound_us)} | ${rx(p.ratio)} | ${p.ratios.map((x) => x.toFixed(2)).join(' ')} | ${k(p.anchor_rps)} | ${k(p.certbound_rps)} | ${fmt(p.anchor_p99, 2)} | ${fmt(p.certbound_p99, 2)} | ${p.failed} |`)
  }
}
if (goals.length) {
  console.log()
  console.log('#### Goals in this run (issue 5; 13: store.redis; 14: DPoP; 15: rate-limiting)')
  console.log()
  console.log('| goal | this run | | |')
  console.log('|---|--:|---|---|')
  for (const g of goals) console.log(`| ${g.name} | ${g.value} | ${g.ok == null ? '—' : g.ok ? 'met' : '**not met**'} | ${g.detail} |`)
}
console.log()
console.log('<details><summary>details: CPU, noise, RSS</summary>')
console.log()
const coreNames = Object.keys(summary[0]?.cores || {})
console.log('| scenario | mode | runs | req/s min–max | proxy CPU % | loadgen CPU % | IdP/issuer CPU % | other CPU % | RSS max MB | ' + coreNames.map((c) => `${c} busy %`).join(' | ') + ' |')
console.log('|---|---|--:|--:|--:|--:|--:|--:|--:|' + coreNames.map(() => '--:|').join(''))
for (const r of summary) {
  console.log(`| ${r.label} | ${r.mode} | ${r.runs} | ${k(r.rps_min)}–${k(r.rps_max)} | ${fmt(r.sut_cpu_pct)} | ${fmt(r.loadgen_cpu_pct)} | ${fmt(r.idp_cpu_pct, 1)} | ${fmt(r.other_cpu_pct)}${r.other_cpu_pct > NOISY ? ' ⚠' : ''} | ${fmt(r.rss_max_mb)} | ` +
    coreNames.map((c) => fmt(r.cores[c].busy) + (r.cores[c].steal ? ` (st ${fmt(r.cores[c].steal, 1)})` : '')).join(' | ') + ' |')
}
console.log()
console.log('</details>')
const noisy = summary.filter((r) => r.other_cpu_pct > NOISY)
for (const r of noisy) {
  const top = new Map()
  for (const x of groups.get(`${r.label}|${r.mode}`)) for (const t of x.foreign?.top || []) { const i = t.lastIndexOf(' '); top.set(t.slice(0, i), (top.get(t.slice(0, i)) || 0) + parseFloat(t.slice(i + 1))) }
  const names = [...top.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([n]) => n)
  console.log(`\n⚠ ${r.label} ${r.mode}: other processes used ${fmt(r.other_cpu_pct)} % of a core (median)${names.length ? '; busiest others: ' + names.join(', ') : ''}: its req/s and latencies are suspect.`)
}
for (const r of summary.filter((x) => x.idp_cpu_pct >= 1)) console.log(`\nNOTE ${r.label} ${r.mode}: the issuer/IdP used ${fmt(r.idp_cpu_pct, 1)} % of a core during the runs: the gateway called it under load (not in its µs/req).`)
const resumed = summary.filter((r) => r.mode === 'hs' && r.tls_resumed > 0)
if (resumed.length) console.log(`\nWARNING: TLS sessions were resumed in hs mode (${resumed.map((r) => r.label).join(', ')}): those were not full handshakes.`)
for (const n of notes) console.log(`\nNOTE ${n.label ?? ''}: ${n.text}`)
console.log()
console.log('proxy CPU = utime+stime of the proxy processes (all threads; master + workers) over the measured window, from /proc; for S0 it is the upstream nginx. ' +
  '"≈ req/s per proxy core" = 1e6 ÷ µs/req: what one fully busy core would give, the number to compare when the load generator (one core) is the bottleneck. ' +
  'Ratios are against S2 (HAProxy) and S0 (direct) in the same mode of this run. other CPU = busy time of both cores minus load generator, proxy and watched helpers; ' +
  `⚠ = over ${NOISY} % of a core.`)
