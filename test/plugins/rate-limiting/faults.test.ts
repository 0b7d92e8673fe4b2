/**
 * rate-limiting's access phase against real TLS requests (the plugin harness), with inputs the gateway core does not
 * produce on main: a store that fails (fault_tolerant true and false) and a mapped Kong consumer (limit_by consumer).
 * The failing store wraps the real memory store; nothing of the plugin is replaced.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import plugin from '../../../plugins/rate-limiting/index.js'
import { schema } from '../../../plugins/rate-limiting/schema.js'
import { MemoryStore } from '../../../src/store/memory.js'
import type { PluginInstance } from '../../../src/pipeline/types.js'
import type { RequestContext } from '../../../src/pipeline/context.js'
import { createTestPki, type TestPki } from '../../helpers/pki.js'
import { ManualClock } from '../../helpers/clock.js'
import { startHarness, testDeps, type Harness } from '../../unit/helpers/plugin-harness.js'

/** The memory store, unreachable while `down` (what a stopped Redis looks like to the plugin: a rejected command). */
class FailingStore extends MemoryStore {
  down = false
  override async increment (entries: ReadonlyArray<{ key: string, by: number, ttlMs: number }>): Promise<number[]> {
    if (this.down) throw new Error('connect ECONNREFUSED 127.0.0.1:6379')
    return await super.increment(entries)
  }
}

let pki: TestPki
const harnesses: Harness[] = []
beforeAll(async () => { pki = await createTestPki() })
afterAll(async () => { await Promise.all(harnesses.map(h => h.close())); pki?.cleanup() })

async function serve (config: Record<string, unknown>, opts: { store?: MemoryStore, clock?: ManualClock, wrap?: (inner: PluginInstance) => PluginInstance } = {}): Promise<{ h: Harness, logs: Array<Record<string, unknown>> }> {
  const clock = opts.clock ?? new ManualClock()
  const logs: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'debug' }, new Writable({ write (c: Buffer, _e, cb) { logs.push(JSON.parse(c.toString()) as Record<string, unknown>); cb() } }))
  const deps = { ...testDeps(pki.dir, [pki.ca.certPem], undefined, logger), store: opts.store ?? new MemoryStore({ now: clock.now }), now: clock.now }
  const inner = await plugin.create(schema.parse(config), deps)
  const h = await startHarness(opts.wrap?.(inner) ?? inner, { certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem })
  harnesses.push(h)
  return { h, logs }
}

describe('fault_tolerant: the store failing', () => {
  it('true (Kong\'s default): requests pass without limit headers; the failure is logged, not once per request', async () => {
    const clock = new ManualClock()
    const store = new FailingStore({ now: clock.now })
    const { h, logs } = await serve({ minute: 1, limit_by: 'ip' }, { store, clock })
    expect((await h.send()).status).toBe(200)
    expect((await h.send()).status).toBe(429)
    store.down = true
    for (let i = 0; i < 5; i++) expect((await h.send()).status).toBe(200)
    expect(h.contexts.slice(2).every(c => c.responseHeaders === undefined)).toBe(true)
    const faults = logs.filter(l => typeof l.msg === 'string' && l.msg.includes('the store failed'))
    expect(faults).toHaveLength(1)
    expect(faults[0]).toMatchObject({ level: 50, err: 'connect ECONNREFUSED 127.0.0.1:6379' })
    // later failures are counted into the next line
    clock.advance(10_000)
    expect((await h.send()).status).toBe(200)
    const again = logs.filter(l => typeof l.msg === 'string' && l.msg.includes('the store failed'))
    expect(again).toHaveLength(2)
    expect(again[1].let_through).toBe(5)
    // back: counting resumes where it was (this window's counter survived the outage)
    store.down = false
    expect((await h.send()).status).toBe(429)
  })

  it('false: 500 with Kong\'s message (CB_ERR_RATE_LIMIT_STORE), never a pass', async () => {
    const store = new FailingStore({ now: new ManualClock().now })
    const { h } = await serve({ minute: 5, limit_by: 'ip', fault_tolerant: false }, { store })
    expect((await h.send()).status).toBe(200)
    store.down = true
    const r = await h.send()
    expect(r.status).toBe(500)
    expect(r.body).toMatchObject({ code: 'CB_ERR_RATE_LIMIT_STORE', message: 'An unexpected error occurred' })
    expect(r.body.detail).toMatch(/ECONNREFUSED/)
    store.down = false
    expect((await h.send()).status).toBe(200)
  })
})

describe('limit_by consumer', () => {
  /** What mtls-auth / openid-connect do once they map a Kong consumer (issue 16): set ctx.consumer. */
  const mapConsumer = (inner: PluginInstance): PluginInstance => ({
    access (ctx: RequestContext) {
      const id = ctx.headers['x-test-consumer']
      if (typeof id === 'string') ctx.consumer = { id, username: undefined, customId: undefined, groups: [] }
      return inner.access!(ctx)
    },
  })

  it('one counter per consumer id; a request without a consumer or credential counts by address (Kong)', async () => {
    const { h } = await serve({ minute: 1 }, { wrap: mapConsumer })
    expect((await h.send({ headers: { 'x-test-consumer': 'c-1' } })).status).toBe(200)
    expect((await h.send({ headers: { 'x-test-consumer': 'c-1' } })).status).toBe(429)
    expect((await h.send({ headers: { 'x-test-consumer': 'c-2' } })).status).toBe(200)
    expect((await h.send()).status).toBe(200)
    expect((await h.send()).status).toBe(429)
  })

  it('a consumer id that looks like an address has a counter of its own', async () => {
    const { h } = await serve({ minute: 1 }, { wrap: mapConsumer })
    expect((await h.send({ headers: { 'x-test-consumer': '127.0.0.1' } })).status).toBe(200)
    expect((await h.send()).status).toBe(200)
  })

  it('credential without a token: the listener-verified client certificate; an unverified one counts by address', async () => {
    const { h } = await serve({ minute: 1, limit_by: 'credential' })
    expect((await h.send({ certPem: pki.client1.certPem, keyPem: pki.client1.keyPem })).status).toBe(200)
    expect((await h.send({ certPem: pki.client1.certPem, keyPem: pki.client1.keyPem })).status).toBe(429)
    expect((await h.send({ certPem: pki.client2.certPem, keyPem: pki.client2.keyPem })).status).toBe(200)
    // self-signed certificates are free to mint: they do not buy a fresh counter, the address is counted
    expect((await h.send({ certPem: pki.selfSigned.certPem, keyPem: pki.selfSigned.keyPem })).status).toBe(200)
    expect((await h.send({ certPem: pki.otherClient.certPem, keyPem: pki.otherClient.keyPem })).status).toBe(429)
  })
})

describe('store keys', () => {
  it('never hold the raw header value (it can be an API key) and are namespaced rl:', async () => {
    const clock = new ManualClock()
    const keys: string[] = []
    class Recording extends MemoryStore {
      override async increment (entries: ReadonlyArray<{ key: string, by: number, ttlMs: number }>): Promise<number[]> {
        for (const e of entries) keys.push(e.key)
        return await super.increment(entries)
      }
    }
    const { h } = await serve({ second: 5, day: 10, limit_by: 'header', header_name: 'apikey' }, { store: new Recording({ now: clock.now }), clock })
    await h.send({ headers: { apikey: 'sk_live_SECRET' } })
    expect(keys).toHaveLength(2)
    for (const k of keys) {
      expect(k).toMatch(/^rl:(second|day):\d+:[\w-]{22}$/)
      expect(k).not.toContain('SECRET')
    }
  })
})
