#!/usr/bin/env node
// Summarize a bench/multicore.sh result directory (multicore.jsonl, skipped.txt) into markdown: HAProxy nbthread N
// against certbound workers: N per mode, and how certbound's requests and CPU spread over its processes.
// usage: node summarize-multicore.mjs bench/results/<stamp>-multicore
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.argv[2]
if (!dir) { console.error('usage: summarize-multicore.mjs RESULT_DIR'); process.exit(2) }
const rows = existsSync(join(dir, 'multicore.jsonl'))
  ? readFileSync(join(dir, 'multicore.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
  : []
const skipped = existsSync(join(dir, 'skipped.txt')) ? readFileSync(join(dir, 'skipped.txt'), 'utf8').split('\n').filter(Boolean) : []
const median = (xs) => {
  const v = xs.filter((x) => x != null && !Number.isNaN(x)).sort((a, b) => a - b)
  if (!v.length) return null
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}
const f = (x, d = 0) => (x == null ? '-' : Number(x).toFixed(d))
const key = (r) => `${r.mode}|${r.n}|${r.cpus}`
const groups = new Map()
for (const r of rows) { if (!groups.has(key(r))) groups.set(key(r), []); groups.get(key(r)).push(r) }

console.log('### certbound multi-core: `gateway.workers: N` beside HAProxy `nbthread N` + `cpu-map`, same N proxy cores')
console.log()
console.log('| mode | N | proxy cores | HAProxy req/s | HAProxy µs/req | certbound scheduling | certbound req/s | certbound µs/req | CPU ÷ HAProxy | certbound µs/req ÷ its N=1 | requests per worker (share of the busiest) | primary CPU share | other CPU % |')
console.log('|---|--:|---|--:|--:|---|--:|--:|--:|--:|---|--:|--:|')
const one = {}
for (const [, rs] of groups) {
  const h = rs.filter((r) => r.sys === 'S2')
  for (const sched of [...new Set(rs.filter((r) => r.sys === 'S5').map((r) => r.sched))]) {
    const c = rs.filter((r) => r.sys === 'S5' && r.sched === sched)
    const hu = median(h.map((r) => r.us_per_req)); const cu = median(c.map((r) => r.us_per_req))
    if (c[0].n === 1) one[c[0].mode] = cu
    const last = c[c.length - 1]
    const withReq = last.procs.filter((p) => p.requests > 0)
    const total = withReq.reduce((t, p) => t + p.requests, 0)
    const spread = withReq.length > 1 ? `${withReq.map((p) => p.requests).join(' / ')} (${f((100 * Math.max(...withReq.map((p) => p.requests))) / total)} %)` : (withReq.length ? 'one process' : '-')
    const allTicks = last.procs.reduce((t, p) => t + p.cpu_ticks, 0)
    const primary = last.procs.length > 1 ? last.procs.find((p) => p.requests === 0) : undefined
    const spreadOnly = c[0].spread_only === true
    console.log(`| ${c[0].mode} | ${c[0].n}${spreadOnly ? ' (spread only)' : ''} | ${c[0].cpus} | ${f(median(h.map((r) => r.rps)))} | ${f(hu)} | ${sched} | ${f(median(c.map((r) => r.rps)))} | ${f(cu)} | ` +
      `${hu && cu ? (cu / hu).toFixed(2) + '×' : '-'} | ${one[c[0].mode] && cu && !spreadOnly ? (cu / one[c[0].mode]).toFixed(2) + '×' : '-'} | ${spread} | ` +
      `${primary && allTicks ? f((100 * primary.cpu_ticks) / allTicks, 1) + ' %' : '-'} | ${f(median(c.map((r) => r.other_cpu_pct)))} |`)
  }
}
console.log()
console.log('µs/req = the proxy processes\' utime+stime over the measured window ÷ requests completed (all load generators). ' +
  'Requests per worker: the access log\'s lines per pid during the load (warm-up included). Primary CPU share: the cluster primary\'s ticks ÷ all certbound processes\' ticks. ' +
  'Rows whose proxy cores are shared with a load generator (spread-only rows) show how connections spread, not a ratio to trust.')
for (const s of skipped) console.log(`\nSKIPPED ${s}`)
