/**
 * Issue 18, "Measure": the new-handshake rate of certbound with mtls-auth `revocation_check_mode: STRICT` (OCSP
 * responder on loopback, answers cached) beside the same gateway with `SKIP`, in one run: two certbound processes
 * (dist/), loaded in turn, rounds interleaved (A B A B …) so that machine noise hits both alike. Every request is a
 * new TCP connection and a full TLS 1.3 mTLS handshake without resumption (`Connection: close`).
 *
 *   npm run build && npx vitest run --config bench/vitest.revocation.config.ts
 *   ROUNDS=5 SECONDS_PER_ROUND=5 CONCURRENCY=16 …
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { createRevocationPki, type RevocationPki } from '../test/helpers/revocation-pki.js'
import { freePort } from '../test/helpers/ocsp-responder.js'
import { startUpstream, type Upstream } from '../test/helpers/upstream.js'

const ROUNDS = Number(process.env.ROUNDS ?? 4)
const SECONDS = Number(process.env.SECONDS_PER_ROUND ?? 4)
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 12)

let pki: RevocationPki
let upstream: Upstream
let asked0 = 0
const gateways: Array<{ name: string, port: number, proc: ChildProcess }> = []

async function startCertbound (name: string, mode: string): Promise<{ name: string, port: number, proc: ChildProcess }> {
  const port = await freePort()
  const file = join(pki.dir, `${name}.yml`)
  writeFileSync(file, `_format_version: "3.0"
gateway:
  log_level: warn
  listen:
    - address: 127.0.0.1:${port}
      tls: { cert: server.crt, key: server.key, client_ca: root.crt, client_certificate: request }
services:
  - name: api
    url: ${upstream.url}
    routes:
      - name: api
        paths: [/]
        plugins:
          - name: mtls-auth
            config: { ca_certificates: [root.crt], revocation_check_mode: ${mode}, http_timeout: 2000, cert_cache_ttl: 600000 }
`)
  const proc = spawn(process.execPath, ['bin/certbound.js', 'start', '-c', file], { stdio: ['ignore', 'ignore', 'inherit'] })
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    if (await once(port).then(s => s === 200, () => false)) return { name, port, proc }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  proc.kill('SIGKILL')
  throw new Error(`${name} did not start`)
}

/** One request on a new connection with a full handshake; resolves the status. */
function once (port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.root.certPem, cert: pki.good.certPem, key: pki.good.keyPem, minVersion: 'TLSv1.3' }, () => {
      s.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n')
    })
    let head = ''
    s.setTimeout(5000, () => s.destroy(new Error('timeout')))
    s.on('data', (d: Buffer) => { if (head.length < 64) head += d.toString('latin1') })
    s.on('end', () => resolve(Number(head.split(' ')[1])))
    s.on('error', reject)
  })
}

async function load (port: number, seconds: number): Promise<{ rate: number, errors: number }> {
  const until = Date.now() + seconds * 1000
  let done = 0
  let errors = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (Date.now() < until) {
      try {
        if (await once(port) === 200) done++
        else errors++
      } catch { errors++ }
    }
  }))
  return { rate: done / seconds, errors }
}

beforeAll(async () => {
  pki = await createRevocationPki()
  upstream = await startUpstream()
  writeFileSync(join(pki.dir, 'server.crt'), pki.server.certPem)
  writeFileSync(join(pki.dir, 'server.key'), pki.server.keyPem)
  asked0 = await pki.responder.count()
  gateways.push(await startCertbound('skip', 'SKIP'), await startCertbound('strict-ocsp', 'STRICT'))
}, 120_000)
afterAll(async () => {
  for (const g of gateways) g.proc.kill('SIGTERM')
  await upstream?.close()
  await pki?.close()
})

describe('new-handshake rate: STRICT OCSP (cached) vs SKIP, same run', () => {
  it('measures', async () => {
    for (const g of gateways) await load(g.port, 1) // warm-up (JIT, the first OCSP answer)
    const rates: Record<string, number[]> = { skip: [], 'strict-ocsp': [] }
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? gateways : [...gateways].reverse()
      for (const g of order) {
        const x = await load(g.port, SECONDS)
        expect(x.errors).toBe(0)
        rates[g.name].push(x.rate)
      }
    }
    const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
    const skip = median(rates.skip)
    const strict = median(rates['strict-ocsp'])
    const asked = await pki.responder.count() - asked0
    // each round loads both back to back: the ratio within a round is less exposed to a machine shared with others
    const paired = median(rates.skip.map((x, i) => x / rates['strict-ocsp'][i]))
    console.log(JSON.stringify({ rounds: ROUNDS, seconds: SECONDS, concurrency: CONCURRENCY, rates, median: { skip, strict }, ratio_of_medians: skip / strict, median_of_paired_ratios: paired, ocsp_requests: asked }))
    // one OCSP request for the certificate, whatever the number of handshakes
    expect(asked).toBe(1)
  }, 600_000)
})
