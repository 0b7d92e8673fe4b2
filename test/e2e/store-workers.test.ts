/**
 * gateway.workers: 2 with the memory store (issue 13): the primary owns the state, workers share it. A token
 * issued by one worker validates in the other (the generated signing key is shared); a revocation at
 * /oauth2/revoke is refused by every worker, over new connections, on both token paths (openid-connect validating
 * the JWT in process, token-introspection with a 30 s cache) from the first request after the 200.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { ensureDist, freePort } from '../helpers/process.js'
import { adminGet, call, revokeAt, startNode, tokenAt, type Node } from '../helpers/store-nodes.js'

let pki: TestPki
let dir: string
let node: Node | undefined

beforeAll(async () => {
  await ensureDist()
  pki = await createTestPki()
  dir = mkdtempSync(join(tmpdir(), 'cb-store-workers-'))
}, 200_000)

afterAll(async () => {
  await node?.stop()
  pki?.cleanup()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

const N = 16

describe('gateway.store memory with gateway.workers: 2', () => {
  it('a token from one worker validates in the other; a revocation holds in every worker at once, on both token paths', async () => {
    const port = await freePort()
    node = await startNode({ dir, pki, name: 'workers', issuerPort: port, port, workers: 2, stateDir: true })
    const st = await adminGet(node, '/status')
    expect(st.json.store).toEqual({ backend: 'memory', connected: true })

    // tokens from several new connections (so from both workers), each validated over new connections
    const tokens = await Promise.all([1, 2, 3, 4].map(() => tokenAt(node!, pki)))
    for (const t of tokens) {
      for (const path of ['/jwt', '/intro'] as const) {
        const rs = await Promise.all(Array.from({ length: 4 }, () => call(node!, pki, path, t)))
        expect(rs.map(r => r.status)).toEqual([200, 200, 200, 200])
      }
    }
    const okPids = new Set(node.served().filter(s => s.status === 200).map(s => s.pid))
    expect(okPids.size).toBe(2) // both workers answered

    const victim = tokens[0]
    // warm both paths' caches in both workers first: the cached answers must not outlive the revocation
    await Promise.all(Array.from({ length: N }, (_, i) => call(node!, pki, i % 2 === 0 ? '/jwt' : '/intro', victim)))
    const before = node.served().length
    const rv = await revokeAt(node, pki, victim)
    expect(rv.status).toBe(200)
    const after = await Promise.all(Array.from({ length: 2 * N }, (_, i) => call(node!, pki, i % 2 === 0 ? '/jwt' : '/intro', victim)))
    expect(after.map(r => r.status)).toEqual(Array(2 * N).fill(401))
    await new Promise(r => setTimeout(r, 300)) // access-log lines of the last requests
    const refused = node.served().slice(before)
    expect(new Set(refused.filter(s => s.status === 401).map(s => s.pid)).size).toBe(2)
    expect(refused.filter(s => s.status === 401).every(s => s.err === 'CB_ERR_TOKEN_REVOKED' || s.err === 'CB_ERR_TOKEN_INACTIVE')).toBe(true)
    // the other tokens are untouched
    expect((await call(node, pki, '/jwt', tokens[1])).status).toBe(200)

    // the revocation file is written by the primary alone, with a hash of the jti (no token material)
    const file = readFileSync(join(dir, 'workers-state', 'revocations.json'), 'utf8')
    expect(Object.keys((JSON.parse(file) as { revocations: object }).revocations)).toHaveLength(1)
    const jti = (JSON.parse(Buffer.from(victim.split('.')[1], 'base64url').toString()) as { jti: string }).jti
    expect(file).not.toContain(jti)

    // a second revocation through the other worker does not erase the first from disk
    await revokeAt(node, pki, tokens[2])
    await revokeAt(node, pki, tokens[3])
    const saved = JSON.parse(readFileSync(join(dir, 'workers-state', 'revocations.json'), 'utf8')) as { revocations: object }
    expect(Object.keys(saved.revocations)).toHaveLength(3)

    // restart: the revocations come back from state_dir, the key store keeps tokens valid
    await node.restart()
    expect((await call(node, pki, '/jwt', victim)).status).toBe(401)
    expect((await call(node, pki, '/intro', victim)).status).toBe(401)
    expect((await call(node, pki, '/jwt', tokens[1])).status).toBe(200)
  }, 180_000)

  it('without state_dir: the generated signing key is one for every worker (tokens from each validate in all)', async () => {
    await node?.stop()
    const port = await freePort()
    node = await startNode({ dir, pki, name: 'ephemeral', issuerPort: port, port, workers: 2 })
    const tokens = await Promise.all(Array.from({ length: 6 }, () => tokenAt(node!, pki)))
    const kids = new Set(tokens.map(t => (JSON.parse(Buffer.from(t.split('.')[0], 'base64url').toString()) as { kid: string }).kid))
    expect(kids.size).toBe(1)
    const rs = await Promise.all(tokens.flatMap(t => [call(node!, pki, '/jwt', t), call(node!, pki, '/jwt', t)]))
    expect(rs.map(r => r.status)).toEqual(Array(12).fill(200))
    await new Promise(r => setTimeout(r, 300))
    expect(new Set(node.served().map(s => s.pid)).size).toBe(2)
  }, 120_000)
})
