import { describe, it, expect } from 'vitest'
import plugin from '../../../plugins/tls-handshake-modifier/index.js'
import { schema } from '../../../plugins/tls-handshake-modifier/schema.js'
import { testDeps } from '../../unit/helpers/plugin-harness.js'

describe('tls-handshake-modifier: tls_client_certificate: REQUEST', () => {
  it('accepts Kong\'s only value, defaults to it, and nothing else', () => {
    expect(schema.parse({ tls_client_certificate: 'REQUEST' })).toEqual({ tls_client_certificate: 'REQUEST' })
    expect(schema.parse({})).toEqual({ tls_client_certificate: 'REQUEST' })
    expect(schema.safeParse({ tls_client_certificate: 'REQUIRE' }).success).toBe(false)
    expect(schema.safeParse({ tls_client_certificate: 'request' }).success).toBe(false)
    expect(schema.safeParse({ tls_client_certificate: 'REQUEST', extra: 1 }).success).toBe(false)
  })

  it('makes the listener request a client certificate and does no per-request work', async () => {
    const deps = testDeps(process.cwd(), [])
    const inst = await plugin.create(schema.parse({}), deps)
    expect(inst.requestClientCertificate).toBe(true)
    expect(inst.access).toBeUndefined()
    expect(inst.providesCredential).toBeUndefined()
    expect(inst.identityHeaders).toBeUndefined()
    await deps.http.close()
  })

  it('has a unique priority that runs before the token plugins', () => {
    expect(plugin.name).toBe('tls-handshake-modifier')
    expect(plugin.priority).toBeGreaterThan(910)
    expect(plugin.priority).toBeLessThan(1000)
  })
})
