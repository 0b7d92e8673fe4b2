/**
 * Two nodes sharing one Redis (issue 13): two certbound processes, one real redis-server (no persistence, its own
 * port). A token issued at A validates at B (the generated keys live in Redis, sealed with gateway.store.secret);
 * a revocation at B is refused at A within 1 s on both token paths; A restarted still refuses it; Redis holds no
 * token material and only keys under the prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { ensureDist, freePort, waitFor } from '../helpers/process.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { adminGet, call, revokeAt, startNode, tokenAt, type Node } from '../helpers/store-nodes.js'

let pki: TestPki
let dir: string
let redis: TestRedis
const nodes: Node[] = []

beforeAll(async () => {
  await ensureDist()
  pki = await createTestPki()
  dir = mkdtempSync(join(tmpdir(), 'cb-store-nodes-'))
  redis = await startRedis()
}, 200_000)

afterAll(async () => {
  for (const n of nodes) await n.stop()
  await redis?.stop()
  pki?.cleanup()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

const SECRET = 'a-test-secret-of-at-least-32-characters!'

describe('gateway.store redis: two nodes, one Redis', () => {
  it('issue at A, validate at B; revoke at B, refused at A within 1 s; A restarted still refuses it', async () => {
    const portA = await freePort()
    const store = `    redis:\n      url: ${redis.url}\n      key_prefix: "cbtest:"\n    secret: "${SECRET}"`
    const a = await startNode({ dir, pki, name: 'a', issuerPort: portA, port: portA, store })
    nodes.push(a)
    const b = await startNode({ dir, pki, name: 'b', issuerPort: portA, store, workers: 2 }) // and two workers, each with its own connection
    nodes.push(b)
    expect((await adminGet(a, '/status')).json.store).toMatchObject({ backend: 'redis', connected: true })
    await waitFor('B\'s workers report the store', async () => ((await adminGet(b, '/status')).json.store as { connected?: boolean } | undefined)?.connected === true ? true : undefined, 10_000)

    const t = await tokenAt(a, pki)
    expect((await call(b, pki, '/jwt', t)).status).toBe(200)
    expect((await call(b, pki, '/intro', t)).status).toBe(200)
    expect((await call(a, pki, '/intro', t)).status).toBe(200) // A's introspection cache now holds it as active
    const t2 = await tokenAt(b, pki)
    expect((await call(a, pki, '/jwt', t2)).status).toBe(200)

    expect((await revokeAt(b, pki, t)).status).toBe(200)
    const revokedAt = Date.now()
    let jwtAt: number | undefined
    let introAt: number | undefined
    while ((jwtAt === undefined || introAt === undefined) && Date.now() - revokedAt < 5000) {
      const [j, i] = await Promise.all([call(a, pki, '/jwt', t), call(a, pki, '/intro', t)])
      if (j.status === 401) jwtAt ??= Date.now()
      if (i.status === 401) introAt ??= Date.now()
    }
    expect(jwtAt! - revokedAt).toBeLessThan(1000)
    expect(introAt! - revokedAt).toBeLessThan(1000)
    expect((await call(a, pki, '/jwt', t2)).status).toBe(200)

    // Redis: keys under the prefix only, no jti, no token, no private key in the clear
    const keys = (await redis.command('KEYS', '*')).split('\n').filter(k => k !== '')
    expect(keys.length).toBeGreaterThan(0)
    expect(keys.every(k => k.startsWith('cbtest:'))).toBe(true)
    const jti = (JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString()) as { jti: string }).jti
    const dump = [...keys, await redis.command('ZRANGE', 'cbtest:revocations', '0', '-1')]
    for (const k of keys.filter(k => k.includes(':kv:'))) dump.push(await redis.command('GET', k))
    const all = dump.join('\n')
    expect(all).not.toContain(jti)
    expect(all).not.toContain(t)
    expect(all).not.toContain('"d":')

    // nothing secret in either node's log: no token, no store secret
    for (const n of [a, b]) {
      const text = JSON.stringify(n.proc.logs) + n.proc.stderr
      expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\./)
      expect(text).not.toContain(SECRET)
    }

    await a.restart()
    expect((await call(a, pki, '/jwt', t)).status).toBe(401)
    expect((await call(a, pki, '/intro', t)).status).toBe(401)
    expect((await call(a, pki, '/jwt', t2)).status).toBe(200) // same keys after the restart: from Redis
  }, 180_000)
})
