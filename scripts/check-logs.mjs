#!/usr/bin/env node
// Scans every log line the test suite's gateways wrote (test/helpers/gateway.ts appends them to
// <os.tmpdir()>/certbound-suite-logs/<pid>.log) for secrets: JWT-shaped strings, PEM private keys, HTTP Basic
// credentials and the client secrets the tests use. Exits 1 with the offending lines, 0 when clean.
//
//   node scripts/check-logs.mjs --mark   remember "now" (run before vitest): earlier lines are not checked
//   node scripts/check-logs.mjs          scan every line since the mark (all lines without one)
// Marking instead of deleting: other test runs on the machine may be appending to the directory right now.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const DIR = process.env.CERTBOUND_SUITE_LOG_DIR ?? join(tmpdir(), 'certbound-suite-logs')

/** What must never be logged. Each entry: a name for the report and a pattern. */
const RULES = [
  // a compact JWS/JWT: base64url('{"...') . base64url('{"...') . signature (possibly empty, as with alg none)
  ['JWT', /eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*/],
  ['PEM private key', /PRIVATE KEY/],
  ['HTTP Basic credentials', /Basic [A-Za-z0-9+/]{12,}={0,2}/],
  // the client secrets the test suite uses (test/**), spelled out
  ...[
    'introspection-secret', 'basic-secret-0123456789', 'hashed-secret-9876543210', 'post-secret-abcdefghijklmnop',
    'a-long-enough-client-secret-123', 'b-secret-0123456789', 'interop-secret-0123456789abcdef',
    'resource-server-secret-0123456789', 'key-test-secret-0123456789', 'basic-S3cret-7f3a9c', 'post-S3cret-b81d42',
    'wrong-S3cret-0c55e1', 'session-9d2f7e1c',
  ].map(s => [`test secret "${s}"`, new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))]),
  // gateway.yml's demo secret (not the client id "demo-secret-client")
  ['test secret "demo-secret"', /demo-secret(?!-client)/],
]

const MARK = join(DIR, '.mark')

if (process.argv.includes('--mark')) {
  mkdirSync(DIR, { recursive: true })
  writeFileSync(MARK, new Date().toISOString())
  console.log(`check-logs: lines of ${DIR} written from now on will be checked`)
  process.exit(0)
}

if (!existsSync(DIR)) {
  console.log(`check-logs: ${DIR} does not exist (no gateway was started): nothing to check`)
  process.exit(0)
}
const since = existsSync(MARK) ? readFileSync(MARK, 'utf8').trim() : ''

/** The line's pino "time" (ISO 8601, so strings compare in time order); '' when it has none. */
function timeOf (line) {
  const m = /"time":"([^"]+)"/.exec(line)
  return m === null ? '' : m[1]
}

const files = readdirSync(DIR).filter(f => f.endsWith('.log')).sort()
let lines = 0
const offending = []
for (const f of files) {
  const text = readFileSync(join(DIR, f), 'utf8')
  const all = text.split('\n')
  all.forEach((line, i) => {
    if (line === '') return
    const t = timeOf(line)
    if (since !== '' && t !== '' && t < since) return
    lines++
    for (const [name, re] of RULES) {
      const m = re.exec(line)
      if (m === null) continue
      const from = Math.max(0, m.index - 100)
      offending.push(`${f}:${i + 1}: ${name}: …${line.slice(from, m.index + 40)}…`)
    }
  })
}

if (offending.length > 0) {
  console.error(`check-logs: ${offending.length} secret(s) found in ${lines} log lines of ${files.length} file(s) in ${DIR}:`)
  for (const o of offending.slice(0, 200)) console.error('  ' + o)
  if (offending.length > 200) console.error(`  … and ${offending.length - 200} more`)
  process.exit(1)
}
console.log(`check-logs: ${lines} log lines in ${files.length} file(s) in ${DIR}: no tokens, secrets or private keys`)
