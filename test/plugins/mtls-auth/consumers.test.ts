/**
 * mtls-auth's Kong consumer mapping (issue 16), at the plugin: consumer_by against the subject CN and then the SAN
 * DNS names, in consumer_by order; authenticated_group_by DN; the defaults of skip_consumer_lookup and the
 * configurations refused at load because every request would fail. Real certificates from a throwaway CA.
 */
import { describe, it, expect, beforeAll } from 'vitest'
import plugin from '../../../plugins/mtls-auth/index.js'
import { createCa, issueCert, type IssuedCert } from '../../../src/pki/dev-pki.js'
import { createConsumerDirectory } from '../../../src/pipeline/consumers.js'
import { AUTHENTICATED_GROUPS } from '../../../src/pipeline/consumers.js'
import { PluginConfigError } from '../../../src/pipeline/types.js'
import { build, makeCtx, run, testDeps, upstreamHeaderMap } from '../openid-connect/harness.js'

let ca: IssuedCert
let device: IssuedCert
const consumers = createConsumerDirectory([
  { id: 'c-web', username: 'web.example.com', customId: undefined, groups: ['web'] },
  { id: 'c-dev', username: undefined, customId: 'device-7', groups: ['devices'] },
])
const deps = () => ({ ...testDeps(), consumers })

beforeAll(async () => {
  ca = await createCa({ subject: 'CN=Consumers Test CA, O=certbound test' })
  // CN device-7 (a custom_id), SAN DNS web.example.com (a username)
  device = await issueCert(ca, { kind: 'client', subject: 'CN=device-7, O=Example Org', dns: ['web.example.com'] })
})

describe('consumer_by: CN and SAN DNS names, in consumer_by order', () => {
  it('consumer_by [username, custom_id]: the SAN DNS name matches a username first', async () => {
    const p = await build(plugin, { skip_consumer_lookup: false }, deps())
    const ctx = makeCtx({ certPem: device.certPem })
    expect(await run(p, ctx)).toBeUndefined()
    expect(ctx.consumer?.id).toBe('c-web')
    expect(upstreamHeaderMap(ctx)).toMatchObject({ 'x-consumer-id': 'c-web', 'x-consumer-username': 'web.example.com' })
  })

  it('consumer_by [custom_id, username]: the CN matches a custom_id first', async () => {
    const p = await build(plugin, { consumer_by: ['custom_id', 'username'] }, deps())
    const ctx = makeCtx({ certPem: device.certPem })
    expect(await run(p, ctx)).toBeUndefined()
    expect(ctx.consumer?.id).toBe('c-dev')
    expect(upstreamHeaderMap(ctx)).toMatchObject({ 'x-consumer-id': 'c-dev', 'x-consumer-custom-id': 'device-7' })
    expect(upstreamHeaderMap(ctx)['x-consumer-username']).toBeUndefined()
  })

  it('with consumers configured, lookup is the default: no match is 401 CB_ERR_CERT_INVALID', async () => {
    const other = await issueCert(ca, { kind: 'client', subject: 'CN=nobody, O=Example Org' })
    const p = await build(plugin, {}, deps())
    const e = await run(p, makeCtx({ certPem: other.certPem }))
    expect(e?.code).toBe('CB_ERR_CERT_INVALID')
    expect(e?.status).toBe(401)
  })
})

describe('skip_consumer_lookup and authenticated_group_by', () => {
  it('DN: the subject DN is the authenticated group; no consumer', async () => {
    const p = await build(plugin, { skip_consumer_lookup: true, authenticated_group_by: 'DN' }, deps())
    const ctx = makeCtx({ certPem: device.certPem })
    expect(await run(p, ctx)).toBeUndefined()
    expect(ctx.consumer).toBeUndefined()
    expect(ctx.get(AUTHENTICATED_GROUPS)).toEqual(['CN=device-7,O=Example Org'])
  })

  it('no consumers configured and skip_consumer_lookup unset: Callista\'s behaviour (no lookup, CN group)', async () => {
    const p = await build(plugin, {}, testDeps())
    const ctx = makeCtx({ certPem: device.certPem })
    expect(await run(p, ctx)).toBeUndefined()
    expect(ctx.consumer).toBeUndefined()
    expect(ctx.get(AUTHENTICATED_GROUPS)).toEqual(['device-7'])
  })

  it('refused at load: skip_consumer_lookup false without consumers, and an empty consumer_by', async () => {
    await expect(build(plugin, { skip_consumer_lookup: false }, testDeps())).rejects.toMatchObject({ path: ['skip_consumer_lookup'] })
    await expect(build(plugin, { consumer_by: [] }, deps())).rejects.toBeInstanceOf(PluginConfigError)
  })
})
