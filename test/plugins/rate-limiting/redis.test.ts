/**
 * rate-limiting across nodes: two gateways (two nodes) sharing a real redis-server, through gateway.store.redis or
 * the plugin's own Kong redis.* keys (policy redis); and the Redis stopped (SIGKILL) or hung (SIGSTOP) with
 * fault_tolerant true and false. The clock is a ManualClock shared by both nodes (no sleeps for windows).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { Agent, request } from 'undici'
import { startGateway, type TestGateway } from '../../helpers/gateway.js'
import { startUpstream, type Upstream } from '../../helpers/upstream.js'
import { startRedis, type TestRedis } from '../../helpers/redis.js'
import { ManualClock } from '../../helpers/clock.js'

interface Res { status: number, headers: Record<string, string>, body: string }
async function get (url: string): Promise<Res> {
  const r = await request(url, { headersTimeout: 15_000, bodyTimeout: 15_000 })
  const body = await r.body.text()
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(r.headers)) headers[k] = String(v)
  return { status: r.statusCode, headers, body }
}

const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0))
function freshMinute (): void { clock.set(Math.floor(clock.now() / 60_000) * 60_000 + 60_000) }

let redis: TestRedis
let up: Upstream
const gateways: TestGateway[] = []

/** One node: its own listener, the same routes as every other node. */
async function node (gatewayStore: boolean): Promise<TestGateway> {
  const g = await startGateway(`_format_version: "3.0"
gateway:
  listen: [{ address: 127.0.0.1:0 }]
${gatewayStore ? `  store:\n    redis: { url: "${redis.url}", command_timeout: 300 }\n` : ''}services:
  - name: echo
    url: ${up.url}
    routes:
${gatewayStore ? `      - name: via-gateway-store
        paths: [/gateway-store]
        plugins:
          - name: rate-limiting
            config: { minute: 5, limit_by: ip, policy: redis }
` : ''}      - name: local-on-redis-store
        paths: [/local]
        plugins:
          - name: rate-limiting
            config: { minute: 5, limit_by: ip, policy: local }
      - name: own-redis
        paths: [/own]
        plugins:
          - name: rate-limiting
            config:
              minute: 5
              limit_by: ip
              policy: redis
              redis: { host: 127.0.0.1, port: ${redis.port}, timeout: 300 }
      - name: own-redis-kong2
        paths: [/own-kong2]
        plugins:
          - name: rate-limiting
            config: { minute: 5, limit_by: ip, policy: redis, redis_host: 127.0.0.1, redis_port: ${redis.port}, redis_timeout: 300 }
      - name: burst
        paths: [/burst]
        plugins:
          - name: rate-limiting
            config: { minute: 50, limit_by: ip, policy: redis, redis: { host: 127.0.0.1, port: ${redis.port}, timeout: 2000 } }
          - name: request-termination
            config: { status_code: 200, message: ok }
      - name: strict
        paths: [/strict]
        plugins:
          - name: rate-limiting
            config: { minute: 5, limit_by: ip, policy: redis, fault_tolerant: false, redis: { host: 127.0.0.1, port: ${redis.port}, timeout: 300 } }
`, { now: clock.now })
  gateways.push(g)
  return g
}

let a: TestGateway
let b: TestGateway
let c: TestGateway

beforeAll(async () => {
  redis = await startRedis()
  up = await startUpstream()
  a = await node(true)
  b = await node(true)
  // a third node without gateway.store: only the plugin's own redis.* make it share
  c = await node(false)
}, 60_000)

afterAll(async () => {
  for (const g of gateways.reverse()) await g.close()
  await up?.close()
  await redis?.stop()
})

async function threeAndThree (x: TestGateway, y: TestGateway, path: string): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < 3; i++) out.push((await get(`${x.url()}${path}`)).status)
  for (let i = 0; i < 3; i++) out.push((await get(`${y.url()}${path}`)).status)
  return out
}

describe('two nodes sharing a Redis: 3 + 3 requests against minute: 5 → the sixth is 429', () => {
  it('policy redis through gateway.store.redis', async () => {
    freshMinute()
    expect(await threeAndThree(a, b, '/gateway-store')).toEqual([200, 200, 200, 200, 200, 429])
  })

  it('policy redis through the plugin\'s own redis.* (Kong 3.x), one node without gateway.store', async () => {
    freshMinute()
    expect(await threeAndThree(a, c, '/own')).toEqual([200, 200, 200, 200, 200, 429])
  })

  it('policy redis through Kong 2.x redis_host / redis_port', async () => {
    freshMinute()
    expect(await threeAndThree(c, b, '/own-kong2')).toEqual([200, 200, 200, 200, 200, 429])
  })

  it('policy local on nodes whose gateway.store is Redis: shared too (stricter than Kong\'s per node, documented)', async () => {
    freshMinute()
    expect(await threeAndThree(a, b, '/local')).toEqual([200, 200, 200, 200, 200, 429])
  })

  it('the counters in Redis are under the store\'s prefix, hashed, and expire with their window', async () => {
    freshMinute()
    await get(`${a.url()}/own`)
    const keys = (await redis.command('KEYS', '*rl:*')).split('\n').filter(k => k !== '')
    expect(keys.length).toBeGreaterThan(0)
    for (const k of keys) expect(k).toMatch(/^certbound:kv:rl:minute:\d+:[\w-]{22}$/)
    const ttl = Number(await redis.command('PTTL', keys[keys.length - 1]))
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(60_000)
  })
})

describe('a burst on two nodes at once (requests batched into shared Lua calls)', () => {
  it('1000 concurrent requests, 500 per node, against minute: 50 → exactly 50 pass', async () => {
    freshMinute()
    const agents = [new Agent({ connections: 50 }), new Agent({ connections: 50 })]
    try {
      const t0 = Date.now()
      const all = await Promise.all(Array.from({ length: 1000 }, async (_, i) => {
        const r = await request(`${(i % 2 === 0 ? a : c).url()}/burst`, { dispatcher: agents[i % 2] })
        await r.body.dump()
        return r.statusCode
      }))
      expect({ ok: all.filter(s => s === 200).length, refused: all.filter(s => s === 429).length }).toEqual({ ok: 50, refused: 950 })
      expect(Date.now() - t0).toBeLessThan(30_000)
    } finally { await Promise.all(agents.map(x => x.close())) }
  }, 60_000)
})

describe('Redis down', () => {
  it('SIGKILL: fault_tolerant true lets requests through without headers; false answers 500; back: counting again', async () => {
    freshMinute()
    expect((await get(`${c.url()}/own`)).headers['ratelimit-remaining']).toBe('4')
    await redis.kill()
    try {
      const t0 = Date.now()
      const passed = await get(`${c.url()}/own`)
      expect(passed.status).toBe(200)
      expect(passed.headers['ratelimit-remaining']).toBeUndefined()
      const refused = await get(`${c.url()}/strict`)
      expect(refused.status).toBe(500)
      expect(JSON.parse(refused.body)).toEqual({ message: 'An unexpected error occurred' })
      expect(Date.now() - t0).toBeLessThan(10_000)
      expect(c.logs.some(l => typeof l.msg === 'string' && l.msg.startsWith('rate-limiting: the store failed'))).toBe(true)
      expect(c.logs.some(l => l.err === 'CB_ERR_RATE_LIMIT_STORE')).toBe(true)
    } finally {
      await redis.restart()
    }
    // a Redis that comes back (empty: no persistence) counts from zero; bounded wait for the reconnect
    const deadline = Date.now() + 15_000
    let r: Res
    do { r = await get(`${c.url()}/own`) } while (r.headers['ratelimit-remaining'] === undefined && Date.now() < deadline && await new Promise(res => setTimeout(res, 100, true)))
    expect(r.status).toBe(200)
    expect(r.headers['ratelimit-remaining']).toBe('4')
  }, 40_000)

  it('SIGSTOP (a hung Redis): answers within the command timeout, never hangs', async () => {
    freshMinute()
    redis.pause()
    try {
      const t0 = Date.now()
      const [passed, refused] = await Promise.all([get(`${c.url()}/own`), get(`${c.url()}/strict`)])
      expect(passed.status).toBe(200)
      expect(refused.status).toBe(500)
      expect(Date.now() - t0).toBeLessThan(5_000)
    } finally {
      redis.resume()
    }
  }, 30_000)
})
