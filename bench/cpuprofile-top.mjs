#!/usr/bin/env node
// Top self-time functions of one or more V8 .cpuprofile files (node --cpu-prof), written for bench/profile.sh.
//
// Self time of a profile node = the sum of the time deltas of the samples that landed in it (the function was
// on top of the stack). Aggregated by function name + script (url:line), then also by "area" (certbound src/,
// plugins/, a node_modules package, node: internals, native/GC/idle), so both the hot functions and where the
// time goes are visible. (program), (idle) and (garbage collector) are V8's pseudo-frames.
//
// --from-ms / --to-ms keep only the samples taken in that window, in ms after the profile's start (profile.sh
// passes the load generator's measured window, so start-up, warm-up and shutdown are left out).
//
// usage: node cpuprofile-top.mjs FILE_OR_DIR... [--top 30] [--root /work/main] [--from-ms A --to-ms B] [--json]
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const { values: a, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '30' },
    root: { type: 'string', default: process.cwd() },
    'from-ms': { type: 'string' },
    'to-ms': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
})
if (!positionals.length) { console.error('usage: cpuprofile-top.mjs FILE_OR_DIR... [--top N] [--root DIR] [--json]'); process.exit(2) }
const files = positionals.flatMap((p) => statSync(p).isDirectory()
  ? readdirSync(p).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(p, f))
  : [p])
if (!files.length) { console.error('cpuprofile-top: no .cpuprofile file found'); process.exit(1) }

const root = a.root.replace(/\/$/, '')
function shortUrl (url) {
  if (!url) return ''
  let u = url.replace(/^file:\/\//, '')
  if (u.startsWith(root + '/')) u = u.slice(root.length + 1)
  return u
}
function area (fn, url) {
  if (!url) {
    if (fn === '(garbage collector)') return 'GC'
    if (fn === '(idle)') return 'idle'
    if (fn === '(program)') return 'V8/native (program)'
    return 'native: ' + (fn || '(anonymous)')
  }
  if (url.startsWith('node:')) return url.startsWith('node:internal/tls') || url === 'node:tls' || url.startsWith('node:_tls') ? 'node: tls' : url.startsWith('node:internal/http') || url.startsWith('node:_http') || url === 'node:http' || url === 'node:https' ? 'node: http' : 'node: ' + url.slice(5).split('/').slice(0, 2).join('/')
  const u = shortUrl(url)
  const nm = u.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = u.slice(nm + 13).split('/')
    return 'npm: ' + (rest[0].startsWith('@') ? rest[0] + '/' + rest[1] : rest[0])
  }
  const m = /^dist\/(src|plugins)\/([^/]+)/.exec(u)
  if (m) return m[1] === 'plugins' ? 'plugins/' + m[2] : 'src/' + m[2].replace(/\.js$/, '')
  return u
}

const byFn = new Map(); const byArea = new Map(); const incl = new Map() // incl: certbound's own functions, inclusive time
let total = 0; let idle = 0; let wall = 0
const fromUs = a['from-ms'] != null ? Number(a['from-ms']) * 1000 : -Infinity
const toUs = a['to-ms'] != null ? Number(a['to-ms']) * 1000 : Infinity
for (const f of files) {
  const p = JSON.parse(readFileSync(f, 'utf8'))
  const nodes = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of p.nodes) for (const c of n.children || []) parent.set(c, n.id)
  const self = new Map()
  // sample i is taken at startTime + sum(timeDeltas[0..i]); its weight is the interval to the next sample
  let t = 0
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0
    if (t < fromUs || t > toUs) continue
    const dt = p.timeDeltas[i + 1] ?? 0
    self.set(p.samples[i], (self.get(p.samples[i]) || 0) + dt)
  }
  wall += Math.min(p.endTime - p.startTime, toUs) - Math.max(0, fromUs)
  for (const [id, us] of self) {
    const n = nodes.get(id); if (!n) continue
    const cf = n.callFrame
    const fn = cf.functionName || '(anonymous)'
    if (fn === '(idle)') { idle += us; continue }
    total += us
    const key = `${fn} ${cf.url ? shortUrl(cf.url) + ':' + (cf.lineNumber + 1) : ''}`.trim()
    byFn.set(key, (byFn.get(key) || 0) + us)
    const ar = area(fn, cf.url)
    byArea.set(ar, (byArea.get(ar) || 0) + us)
    // inclusive time of certbound's functions (dist/src, dist/plugins) on this sample's stack, once per function
    const seen = new Set()
    for (let id2 = id; id2 !== undefined; id2 = parent.get(id2)) {
      const cf2 = nodes.get(id2).callFrame
      const u = shortUrl(cf2.url)
      if (!/^dist\/(src|plugins)\//.test(u)) continue
      const k2 = `${cf2.functionName || '(anonymous)'} ${u}:${cf2.lineNumber + 1}`
      if (seen.has(k2)) continue
      seen.add(k2)
      incl.set(k2, (incl.get(k2) || 0) + us)
    }
  }
}
const top = (m, n) => [...m.entries()].sort((x, y) => y[1] - x[1]).slice(0, n)
const ms = (us) => (us / 1000).toFixed(1)
const pc = (us) => ((us / total) * 100).toFixed(1)
const N = Number(a.top)
if (a.json) {
  console.log(JSON.stringify({ files, wall_ms: wall / 1000, busy_ms: total / 1000, idle_ms: idle / 1000, functions: top(byFn, N).map(([k, v]) => ({ fn: k, self_ms: v / 1000, pct: +pc(v) })), certbound_inclusive: top(incl, N).map(([k, v]) => ({ fn: k, total_ms: v / 1000, pct: +pc(v) })), areas: top(byArea, 100).map(([k, v]) => ({ area: k, self_ms: v / 1000, pct: +pc(v) })) }, null, 1))
  process.exit(0)
}
const win = Number.isFinite(fromUs) || Number.isFinite(toUs) ? ` in the window ${ms(Math.max(0, fromUs))}–${Number.isFinite(toUs) ? ms(toUs) : 'end'} ms after the profile's start` : ''
console.log(`${files.length} profile(s)${win}: ${ms(wall)} ms wall; busy (non-idle) samples ${ms(total)} ms, idle ${ms(idle)} ms. Percentages are of busy time.`)
console.log()
console.log(`top ${N} functions by self time`)
console.log('| # | self ms | % busy | function  script:line |')
console.log('|--:|--:|--:|---|')
top(byFn, N).forEach(([k, v], i) => console.log(`| ${i + 1} | ${ms(v)} | ${pc(v)} | \`${k}\` |`))
console.log()
console.log(`top ${Math.min(N, 20)} certbound functions (dist/src, dist/plugins) by inclusive time (self + callees)`)
console.log('| # | total ms | % busy | function  script:line |')
console.log('|--:|--:|--:|---|')
top(incl, Math.min(N, 20)).forEach(([k, v], i) => console.log(`| ${i + 1} | ${ms(v)} | ${pc(v)} | \`${k}\` |`))
console.log()
console.log('self time by area')
console.log('| area | self ms | % busy |')
console.log('|---|--:|--:|')
for (const [k, v] of top(byArea, 40)) console.log(`| ${k} | ${ms(v)} | ${pc(v)} |`)
