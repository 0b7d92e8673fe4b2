import { describe, expect, it } from 'vitest'
import plugin from '../../../plugins/require-scopes/index.js'
import { credentialFromClaims } from '../../../src/auth/credential.js'
import type { RequestContext } from '../../../src/pipeline/context.js'
import { build, configIssues, makeCtx, run } from '../openid-connect/harness.js'

function withScope (scope: string | undefined): RequestContext {
  const ctx = makeCtx({ headers: [['authorization', 'Bearer t']] })
  if (scope !== undefined) ctx.credential = credentialFromClaims('t', { sub: 's', scope }, 'test')
  return ctx
}

describe('require-scopes: scopes (all required)', () => {
  it('passes when every scope is present', async () => {
    const p = await build(plugin, { scopes: ['read', 'write'] })
    expect(p.needsCredential).toBe(true)
    expect(await run(p, withScope('write other read'))).toBeUndefined()
  })

  it('RFC 6750 §3.1: a missing scope is 403 insufficient_scope naming the required scopes', async () => {
    const p = await build(plugin, { scopes: ['read', 'write'] })
    const err = await run(p, withScope('read'))
    expect(err).toMatchObject({ code: 'CB_ERR_INSUFFICIENT_SCOPE', status: 403, message: 'Insufficient scope' })
    expect(err?.headers).toEqual({
      'www-authenticate': 'Bearer realm="certbound", error="insufficient_scope", error_description="The access token lacks a required scope", scope="read write"',
    })
    expect(err?.detail).toBe('scope "write" is required; the token has "read"')
  })

  it('a token with no scope at all is refused', async () => {
    const p = await build(plugin, { scopes: ['system-access'] })
    expect(await run(p, withScope(''))).toMatchObject({ code: 'CB_ERR_INSUFFICIENT_SCOPE' })
  })

  it('scope matching is exact (no prefix or case folding)', async () => {
    const p = await build(plugin, { scopes: ['system-access'] })
    expect(await run(p, withScope('system-access-extra System-Access'))).toMatchObject({ code: 'CB_ERR_INSUFFICIENT_SCOPE' })
  })
})

describe('require-scopes: any_of (at least one)', () => {
  it('passes with one of them, 403 with none', async () => {
    const p = await build(plugin, { any_of: ['admin', 'operator'] })
    expect(await run(p, withScope('operator'))).toBeUndefined()
    const err = await run(p, withScope('reader'))
    expect(err?.headers?.['www-authenticate']).toBe('Bearer realm="certbound", error="insufficient_scope", error_description="The access token lacks a required scope", scope="admin operator"')
  })

  it('with scopes and any_of both must hold', async () => {
    const p = await build(plugin, { scopes: ['api'], any_of: ['admin', 'operator'] })
    expect(await run(p, withScope('api admin'))).toBeUndefined()
    expect((await run(p, withScope('admin')))?.headers?.['www-authenticate']).toMatch(/scope="api"$/)
    expect((await run(p, withScope('api')))?.headers?.['www-authenticate']).toMatch(/scope="admin operator"$/)
  })
})

describe('require-scopes: no credential', () => {
  it('401 without error code (defence in depth: the loader puts a token plugin first)', async () => {
    const p = await build(plugin, { scopes: ['x'] })
    expect(await run(p, withScope(undefined))).toMatchObject({ code: 'CB_ERR_TOKEN_MISSING', status: 401, headers: { 'www-authenticate': 'Bearer realm="certbound"' } })
  })
})

describe('require-scopes: config validation', () => {
  it('needs scopes or any_of', () => {
    expect(configIssues(plugin, {})).toEqual([['scopes', expect.stringMatching(/scopes .* or any_of/)]])
    expect(configIssues(plugin, { scopes: [], any_of: [] })).toHaveLength(1)
  })
  it('rejects unknown keys and malformed scope tokens', () => {
    expect(configIssues(plugin, { scopes: ['a'], scope: ['a'] })).toEqual([['', 'Unrecognized key: "scope"']])
    expect(configIssues(plugin, { scopes: ['a b'] })).toEqual([['scopes.0', expect.stringMatching(/scope token/)]])
    expect(configIssues(plugin, { any_of: ['say "hi"'] })[0][0]).toBe('any_of.0')
  })
})
