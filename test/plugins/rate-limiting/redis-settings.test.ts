/** Kong's redis.* / redis_* keys → the connection the store opens for the plugin's own Redis (policy redis). */
import { describe, it, expect } from 'vitest'
import { schema, redisSettings } from '../../../plugins/rate-limiting/schema.js'
import { redisConnection } from '../../../plugins/rate-limiting/counter-store.js'
import { PluginConfigError } from '../../../src/pipeline/types.js'

const conn = (c: Record<string, unknown>) => redisConnection(redisSettings(schema.parse({ minute: 1, policy: 'redis', ...c }))!)

describe('redis settings', () => {
  it('no host: no own Redis (the gateway\'s store is used)', () => {
    expect(redisSettings(schema.parse({ minute: 1, redis: { host: null, port: 6379 } }))).toBeUndefined()
  })

  it('Kong 3.x redis.*', () => {
    expect(conn({ redis: { host: 'redis.internal', port: 6380, database: 2, username: 'rl', password: 'pw', timeout: 1500 } }))
      .toEqual({ url: 'redis://redis.internal:6380/2', username: 'rl', password: 'pw', connect_timeout: 1500, command_timeout: 1500 })
  })

  it('Kong 2.x redis_* read the same way; defaults as Kong (6379, db 0, 2000 ms)', () => {
    expect(conn({ redis_host: '10.0.0.5', redis_password: 'pw' })).toEqual({ url: 'redis://10.0.0.5:6379/0', password: 'pw', connect_timeout: 2000, command_timeout: 2000 })
  })

  it('IPv6 hosts, TLS (verified), Kong 3.6 send/read/connect timeouts', () => {
    expect(conn({ redis: { host: '::1', ssl: true, ssl_verify: true, send_timeout: 300, read_timeout: 700, connect_timeout: 100 } }))
      .toEqual({ url: 'rediss://[::1]:6379/0', connect_timeout: 100, command_timeout: 700 })
  })

  it('TLS without verification (Kong\'s default ssl_verify: false) and a server_name other than host are refused', () => {
    expect(() => conn({ redis: { host: 'r', ssl: true } })).toThrow(PluginConfigError)
    expect(() => conn({ redis: { host: 'r', ssl: true, ssl_verify: true, server_name: 'other' } })).toThrow(/server_name/)
  })
})
