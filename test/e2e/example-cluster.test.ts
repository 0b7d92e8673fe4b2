/**
 * examples/cluster/run.sh as a user runs it (on free ports): Redis and two nodes on loopback; a token from A works
 * at B; revoked at B, refused at A. The script's own output is what is asserted.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { ensureDist, freePort, ROOT } from '../helpers/process.js'

beforeAll(async () => { await ensureDist() }, 200_000)

describe('examples/cluster/run.sh', () => {
  it('shows revocation crossing two nodes through one Redis', async () => {
    const env = { ...process.env }
    for (const k of ['REDIS_PORT', 'A_PORT', 'B_PORT', 'A_ADMIN', 'B_ADMIN']) env[k] = String(await freePort())
    const out = await new Promise<string>((resolve, reject) => {
      execFile('bash', [join(ROOT, 'examples', 'cluster', 'run.sh')], { env, timeout: 90_000 }, (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`${err.message}\n${stdout}\n${stderr}`)); else resolve(stdout)
      })
    })
    expect(out).toContain('"store":{"backend":"redis","connected":true')
    expect(out).toMatch(/B: 200\n/)
    expect(out).toContain('revoke at B: 200')
    expect(out).toMatch(/A: 401\nB: 401/)
  }, 120_000)
})
