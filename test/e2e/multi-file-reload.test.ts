/**
 * Several config files at run time (issue 16): `-c DIR` reloads (SIGHUP's path: Gateway.reload()) re-read every
 * file, a file added to the directory is picked up by the file watcher, and a refused reload names the file and
 * line of the problem and keeps the running config.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { Gateway } from '../../src/gateway.js'
import { createLogger } from '../../src/observability/logger.js'
import { curl } from '../helpers/curl.js'

let dir: string
let gw: Gateway
const logs: Array<Record<string, unknown>> = []

const route = (name: string, status: number): string => `_format_version: "3.0"
services:
  - name: ${name}
    url: http://127.0.0.1:9
    routes:
      - name: ${name}-route
        paths: [/${name}]
        plugins:
          - name: request-termination
            config: { status_code: ${status} }
`

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'certbound-multi-reload-'))
  writeFileSync(join(dir, '00-gateway.yml'), '_format_version: "3.0"\ngateway:\n  listen:\n    - address: 127.0.0.1:0\n')
  writeFileSync(join(dir, '10-a.yml'), route('a', 201))
  const sink = new Writable({ write (c: Buffer, _e, cb) { for (const l of c.toString().split('\n')) if (l.trim() !== '') { try { logs.push(JSON.parse(l) as Record<string, unknown>) } catch { /* partial */ } } cb() } })
  gw = await Gateway.start({ configFile: [dir], watchConfig: true, logger: createLogger({ level: 'info', destination: sink as never }) })
})
afterAll(async () => {
  await gw?.close(0)
  rmSync(dir, { recursive: true, force: true })
})

const status = async (path: string): Promise<number> => (await curl([`${gw.addresses()[0].url}${path}`])).status

async function eventually (what: string, fn: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000
  while (!await fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

describe('-c DIR at run time', () => {
  it('serves the routes of every file', async () => {
    expect(await status('/a')).toBe(201)
    expect(await status('/b')).toBe(404)
  })

  it('a file added to the directory is picked up by the watcher', async () => {
    writeFileSync(join(dir, '20-b.yml'), route('b', 202))
    await eventually('/b to answer 202', async () => await status('/b') === 202)
    expect(await status('/a')).toBe(201)
  })

  it('reload (SIGHUP) re-reads every file; a problem is refused with its file and line, the running config stays', async () => {
    writeFileSync(join(dir, '20-b.yml'), route('a', 203)) // service name "a" is already used by 10-a.yml
    const r = await gw.reload()
    expect(r.ok).toBe(false)
    if (!r.ok) {
      expect(r.diagnostics.map(d => [d.file, d.line, d.code, d.path])).toContainEqual([join(dir, '20-b.yml'), 3, 'CB_CFG_DUPLICATE', 'services[0].name'])
      expect(r.diagnostics.find(d => d.code === 'CB_CFG_DUPLICATE' && d.path === 'services[0].name')?.message).toBe('service name "a" is already used by services[0] in 10-a.yml')
    }
    expect(await status('/b')).toBe(202)
    writeFileSync(join(dir, '20-b.yml'), route('c', 204))
    expect((await gw.reload()).ok).toBe(true)
    expect(await status('/c')).toBe(204)
    expect(await status('/b')).toBe(404)
  })
})
