/**
 * Redis faults under bounded load (issue 13): a real redis-server stopped with SIGSTOP (hung: the socket stays open,
 * nothing answers), then SIGKILLed and restarted empty. The gateway never crashes and never waits unboundedly;
 * /status/ready says 503 while Redis is unreachable; a revoked token is never accepted; once the replica is older
 * than replica_max_age, decisions that need it fail closed (503); /oauth2/revoke answers 503 (not revoked) rather
 * than 200; after Redis is back the node is ready within seconds and re-seeds the revocations an empty Redis lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { ensureDist, freePort, startCertbound, waitFor } from '../helpers/process.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { revocationId } from '../../src/authorization-server/revocation-store.js'
import { adminGet, nodeConfig, revokeAt, startNode, tokenAt, type Node } from '../helpers/store-nodes.js'

let pki: TestPki
let dir: string
let redis: TestRedis
let node: Node | undefined
let agent: Agent

beforeAll(async () => {
  await ensureDist()
  pki = await createTestPki()
  dir = mkdtempSync(join(tmpdir(), 'cb-store-faults-'))
  redis = await startRedis()
  agent = new Agent({ connect: { ca: readFileSync(pki.ca.certFile), cert: readFileSync(pki.client1.certFile), key: readFileSync(pki.client1.keyFile), servername: 'localhost' } })
}, 200_000)

afterAll(async () => {
  await node?.stop()
  await agent?.close()
  await redis?.stop()
  pki?.cleanup()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

async function status (n: Node, path: string, token: string): Promise<number> {
  const r = await request(`https://127.0.0.1:${n.port}${path}`, { dispatcher: agent, headers: { authorization: `Bearer ${token}` }, headersTimeout: 10_000, bodyTimeout: 10_000 })
  await r.body.dump()
  return r.statusCode
}

const ready = async (n: Node): Promise<number> => (await adminGet(n, '/status/ready')).status

describe('gateway.store redis: Redis stopped and killed under load', () => {
  it('no crash, readiness flips, fail closed, a revoked token never passes, recovery and re-seeding after restart', async () => {
    const port = await freePort()
    const store = `    redis:\n      url: ${redis.url}\n      command_timeout: 300\n      connect_timeout: 500\n      reconnect_max_delay: 500\n    secret: "a-test-secret-of-at-least-32-characters!"\n    replica_max_age: 3000\n    resync_interval: 1000`
    node = await startNode({ dir, pki, name: 'faults', issuerPort: port, port, store })
    const good = await tokenAt(node, pki)
    const revoked = await tokenAt(node, pki)
    const spare = await tokenAt(node, pki)
    expect((await revokeAt(node, pki, revoked)).status).toBe(200)

    // bounded background load: 4 loops, at most 3000 requests, for as long as the test runs
    const seen: Array<{ token: 'good' | 'revoked', status: number }> = []
    let stop = false
    let sent = 0
    const loop = async (): Promise<void> => {
      while (!stop && sent < 3000) {
        sent++
        const which = sent % 3 === 0 ? 'revoked' : 'good'
        const path = sent % 2 === 0 ? '/jwt' : '/intro'
        try { seen.push({ token: which, status: await status(node!, path, which === 'good' ? good : revoked) }) } catch (e) { seen.push({ token: which, status: -1 }); void e }
        await new Promise(r => setTimeout(r, 10))
      }
    }
    const loops = Promise.all([loop(), loop(), loop(), loop()])

    // SIGSTOP: a hung Redis
    redis.pause()
    const pausedAt = Date.now()
    await waitFor('readiness 503 while redis is stopped', async () => await ready(node!) === 503 ? true : undefined, 10_000)
    // within replica_max_age the replica still answers; past it, the AS's tokens fail closed
    await waitFor('fail closed past replica_max_age', async () => await status(node!, '/jwt', good) === 503 ? true : undefined, 12_000)
    // counted from the last confirmation (a health PING up to 1 s before the stop)
    expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(1800)
    const rv = await revokeAt(node, pki, spare)
    // not confirmed: the client is told to retry (the command may still run once Redis wakes: revoking is the safe side)
    expect(rv.status).toBe(503)
    expect(node.proc.proc.exitCode).toBeNull()

    redis.resume()
    await waitFor('ready again after SIGCONT', async () => await ready(node!) === 200 ? true : undefined, 15_000)
    expect(await status(node, '/jwt', good)).toBe(200)
    expect(await status(node, '/jwt', revoked)).toBe(401)

    // SIGKILL, and back empty (no persistence): the node re-seeds the revocation it holds
    await redis.kill()
    await waitFor('readiness 503 while redis is down', async () => await ready(node!) === 503 ? true : undefined, 10_000)
    expect(await status(node, '/intro', revoked)).not.toBe(200)
    await redis.restart()
    const back = Date.now()
    await waitFor('ready again after restart', async () => await ready(node!) === 200 ? true : undefined, 15_000)
    expect(Date.now() - back).toBeLessThan(10_000)
    const rid = revocationId((JSON.parse(Buffer.from(revoked.split('.')[1], 'base64url').toString()) as { jti: string }).jti)
    await waitFor('revocation re-seeded into the empty redis', async () => (await redis.command('ZSCORE', 'certbound:revocations', rid)) !== '(nil)' ? true : undefined, 10_000)
    expect(await status(node, '/jwt', revoked)).toBe(401)
    expect(await status(node, '/intro', revoked)).toBe(401)
    expect(await status(node, '/jwt', good)).toBe(200)

    stop = true
    await loops
    expect(node.proc.proc.exitCode).toBeNull()
    expect(seen.length).toBeGreaterThan(50)
    // the revoked token never passed; every answer was a decision (no 500, no dropped connection)
    expect(seen.filter(s => s.token === 'revoked' && s.status === 200)).toEqual([])
    expect([...new Set(seen.map(s => s.status))].filter(s => ![200, 401, 503].includes(s))).toEqual([])
    const logText = JSON.stringify(node.proc.logs)
    expect(logText).toContain('store: redis unreachable') // the outage is logged once per change, not per request
    expect(node.proc.logs.filter(l => l.msg === 'store: redis unreachable; decisions that need it fail closed until it is back').length).toBeLessThan(50)
    expect(logText).not.toMatch(/eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\./)
    const metrics = await request(`${node.admin}/metrics`).then(r => r.body.text())
    expect(metrics).toMatch(/certbound_store_errors_total\{backend="redis",op="[a-z_]+"\} [1-9]/)
    expect(metrics).toContain('certbound_store_command_duration_seconds_bucket')
  }, 180_000)

  it('started while Redis is unreachable: the authorization server waits for its keys (bounded), then the start fails with the reason (no hang)', async () => {
    const port = await freePort()
    const dead = await freePort()
    const file = join(dir, 'dead.yml')
    writeFileSync(file, nodeConfig({ dir, pki, name: 'dead', issuerPort: port, port, adminPort: await freePort(), store: `    redis:\n      url: redis://127.0.0.1:${dead}\n      connect_timeout: 300\n    secret: "a-test-secret-of-at-least-32-characters!"` }))
    const p = startCertbound(file, ['--no-watch'])
    const t0 = Date.now()
    const code = await Promise.race([p.exited, new Promise(r => setTimeout(() => r('hung'), 40_000))])
    if (code === 'hung') await p.kill()
    expect(code).toBe(1)
    expect(Date.now() - t0).toBeLessThan(30_000)
    expect(p.stderr).toMatch(/CB_CFG_SECTION\s+authorization_server\s+cannot read the signing keys from the shared store \(gateway\.store is unreachable/)
  }, 60_000)
})
