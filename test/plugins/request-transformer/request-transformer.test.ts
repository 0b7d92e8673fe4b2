import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { X509Certificate } from 'node:crypto'
import plugin from '../../../plugins/request-transformer/index.js'
import { compileTemplate, parseTemplate, renderTemplate, type TemplateEnv } from '../../../plugins/request-transformer/template.js'
import { credentialFromClaims } from '../../../src/auth/credential.js'
import { describeCertificate } from '../../../src/server/peer.js'
import type { RequestContext } from '../../../src/pipeline/context.js'
import { createTestPki, type TestPki } from '../../helpers/pki.js'
import { build, configIssues, makeCtx, run, upstreamHeaderMap, type CtxOptions } from '../openid-connect/harness.js'

let pki: TestPki
beforeAll(async () => { pki = await createTestPki() })
afterAll(() => pki.cleanup())

function ctxWith (o: CtxOptions & { claims?: Record<string, unknown> } = {}): RequestContext {
  const ctx = makeCtx({ routeName: 'orders', ...o })
  if (o.claims !== undefined) ctx.credential = credentialFromClaims('tok', o.claims, 'test')
  return ctx
}

const env: TemplateEnv = { header: (ctx, n) => ctx.headers[n] as string | undefined, query: () => undefined }

describe('templates: compiled once, rendered from parts', () => {
  it('splits literals and lookups, in both Kong forms', () => {
    expect(parseTemplate('Bearer $(credential.sub) via $(headers["X-Foo"])!')).toEqual([
      'Bearer ', { root: 'credential', name: 'sub', source: '$(credential.sub)' },
      ' via ', { root: 'headers', name: 'x-foo', source: '$(headers["X-Foo"])' }, '!',
    ])
    expect(parseTemplate('plain')).toEqual(['plain'])
    expect(parseTemplate("$(query_params['a b'])")).toEqual([{ root: 'query_params', name: 'a b', source: "$(query_params['a b'])" }])
  })

  it('a literal renders without work; lookups render per request', () => {
    const lit = compileTemplate('static', env)
    expect(lit.literal).toBe('static')
    const t = compileTemplate('$(credential.client_id)/$(credential.sub)@$(route.name)', env)
    expect(t.literal).toBeUndefined()
    expect(t.readsCredential).toBe(true)
    expect(t.parts.filter(p => typeof p === 'function')).toHaveLength(3)
    expect(renderTemplate(t, ctxWith({ claims: { client_id: 'c1', sub: 's1' } }))).toBe('c1/s1@orders')
  })

  it('any claim, nested claims (JSON for objects), and Keycloak fallbacks', () => {
    const ctx = ctxWith({ claims: { azp: 'kc-client', email: 'a@example.org', realm_access: { roles: ['r1', 'r2'] }, n: 5 } })
    expect(renderTemplate(compileTemplate('$(credential.client_id)', env), ctx)).toBe('kc-client')
    expect(renderTemplate(compileTemplate('$(credential.email)', env), ctx)).toBe('a@example.org')
    expect(renderTemplate(compileTemplate('$(credential.realm_access.roles)', env), ctx)).toBe('["r1","r2"]')
    expect(renderTemplate(compileTemplate('$(credential.n)', env), ctx)).toBe('5')
  })

  it('a lookup that yields nothing makes the whole value undefined (the entry is skipped)', () => {
    expect(renderTemplate(compileTemplate('id=$(credential.client_id)', env), ctxWith({ claims: { sub: 's' } }))).toBeUndefined()
    expect(renderTemplate(compileTemplate('$(credential.sub)', env), ctxWith())).toBeUndefined()
  })

  it('unknown roots and fields are errors naming what is supported', () => {
    expect(() => parseTemplate('$(uri_captures.id)')).toThrow(/Kong's uri_captures is not supported/)
    expect(() => parseTemplate('$(env.HOME)')).toThrow(/unknown template root "env".*credential, client_cert, headers, query_params, route/)
    expect(() => parseTemplate('$(client_cert.email)')).toThrow(/unknown client_cert field "email"/)
    expect(() => parseTemplate('$(route.id)')).toThrow(/unknown route field/)
    expect(() => parseTemplate('x $(credential.sub')).toThrow(/unterminated/)
    expect(() => parseTemplate('$(os.execute("id"))')).toThrow(/not a lookup|unknown template root/)
  })
})

describe('Kong\'s order: remove, rename, replace, add (if absent), append', () => {
  it('applies each step to the result of the previous ones', async () => {
    const p = await build(plugin, {
      remove: { headers: ['x-a'] },
      rename: { headers: ['x-b:x-c'] },
      replace: { headers: ['x-c:replaced', 'x-missing:never'] },
      add: { headers: ['x-c:not-added', 'x-a:re-added', 'x-d:$(headers.x-c)'] },
      append: { headers: ['x-d:second'] },
    })
    const ctx = ctxWith({ headers: [['X-A', '1'], ['X-B', '2']] })
    expect(await run(p, ctx)).toBeUndefined()
    expect(ctx.upstreamHeaders).toEqual([
      ['x-a', null, false],
      ['x-b', null, false], ['x-c', '2', false],
      ['x-c', 'replaced', false],
      ['x-a', 're-added', false], ['x-d', 'replaced', false],
      ['x-d', 'second', true],
    ])
    expect(upstreamHeaderMap(ctx)).toEqual({ 'x-a': 're-added', 'x-b': null, 'x-c': 'replaced', 'x-d': 'replaced, second' })
  })

  it('add sees headers set by earlier plugins (present → not added)', async () => {
    const p = await build(plugin, { add: { headers: ['x-credential-sub:$(credential.sub)', 'x-credential-client-id:$(credential.client_id)'] } })
    const ctx = ctxWith({ claims: { sub: 'from-token', client_id: 'c1' } })
    ctx.setUpstreamHeader('x-credential-sub', 'set-by-token-plugin')
    await run(p, ctx)
    expect(upstreamHeaderMap(ctx)).toEqual({ 'x-credential-sub': 'set-by-token-plugin', 'x-credential-client-id': 'c1' })
  })

  it('the query string: same steps, same order; renamed parameters keep every value', async () => {
    const p = await build(plugin, {
      remove: { querystring: ['debug'] },
      rename: { querystring: ['id:order_id'] },
      replace: { querystring: ['page:1'] },
      add: { querystring: ['lang:en', 'page:9', 'client:$(credential.client_id)'] },
      append: { querystring: ['tag:$(query_params.order_id)'] },
    })
    const ctx = ctxWith({ query: 'debug=1&id=7&id=8&page=3', claims: { client_id: 'c 1' } })
    await run(p, ctx)
    expect(ctx.upstreamQuery).toEqual([
      ['debug', null, false],
      ['id', null, false], ['order_id', null, false], ['order_id', '7', true], ['order_id', '8', true],
      ['page', '1', false],
      ['lang', 'en', false], ['client', 'c 1', false],
      ['tag', '7', true],
    ])
  })
})

describe('identity headers (strip before set)', () => {
  it('headers filled from the credential are identity headers: a client copy neither blocks add nor survives', async () => {
    const p = await build(plugin, { add: { headers: ['X-User:$(credential.sub)', 'x-static:yes'] } })
    expect(p.needsCredential).toBe(true)
    expect(p.identityHeaders).toEqual(['x-user'])
    const ctx = ctxWith({ headers: [['x-user', 'admin'], ['x-static', 'client']], claims: { sub: 'alice' }, strip: p.identityHeaders })
    await run(p, ctx)
    expect(upstreamHeaderMap(ctx)).toEqual({ 'x-user': 'alice' }) // x-static: the client's value is kept (plain header)
  })

  it('$(headers.x-credential-*) never reads a client-sent copy', async () => {
    const p = await build(plugin, { add: { headers: ['x-who:$(headers.x-credential-sub)'] } })
    const ctx = ctxWith({ headers: [['x-credential-sub', 'spoofed']] })
    await run(p, ctx)
    expect(ctx.upstreamHeaders).toEqual([])
    ctx.setUpstreamHeader('x-credential-sub', 'verified')
    await run(p, ctx)
    expect(upstreamHeaderMap(ctx)['x-who']).toBe('verified')
  })

  it('a rename never forwards a client-forged identity header under its new name (another plugin\'s, or a consumer header)', async () => {
    const p = await build(plugin, { rename: { headers: ['x-consumer-username:x-user', 'x-authenticated-userid:x-uid', 'x-credential-sub:x-sub', 'x-plain:x-renamed'] } })
    // the gateway-wide strip set: Kong's consumer headers always, and what the route's other plugins set
    const ctx = ctxWith({
      headers: [['X-Consumer-Username', 'admin'], ['X-Authenticated-Userid', 'root'], ['X-Credential-Sub', 'forged'], ['X-Plain', 'kept']],
      strip: ['x-consumer-username', 'x-authenticated-userid'],
    })
    await run(p, ctx)
    expect(upstreamHeaderMap(ctx)).toEqual({ 'x-plain': null, 'x-renamed': 'kept' })
    expect(ctx.upstream.get('x-user')).toBeUndefined()
    expect(ctx.upstream.get('x-uid')).toBeUndefined()
    expect(ctx.upstream.get('x-sub')).toBeUndefined()
    expect(ctx.upstream.get('X-Renamed')).toBe('kept')
  })

  it('a rename moves the value an earlier plugin set (what the upstream would see), not the client\'s', async () => {
    const p = await build(plugin, { rename: { headers: ['x-consumer-username:x-user'] } })
    const ctx = ctxWith({ headers: [['x-consumer-username', 'forged']], strip: ['x-consumer-username'] })
    ctx.setUpstreamHeader('x-consumer-username', 'alice')
    await run(p, ctx)
    expect(ctx.upstream.get('x-user')).toBe('alice')
    expect(ctx.upstream.get('x-consumer-username')).toBeUndefined()
  })

  it('a plugin without credential templates does not need a credential', async () => {
    const p = await build(plugin, { add: { headers: ['x-route:$(route.name)'] }, remove: { headers: ['cookie'] } })
    expect(p.needsCredential).toBe(false)
    expect(p.identityHeaders).toEqual([])
  })

  it('values are sanitised: no CR/LF from a claim reaches a header', async () => {
    const p = await build(plugin, { add: { headers: ['x-name:$(credential.name)'] } })
    const ctx = ctxWith({ claims: { name: 'eve\r\nx-admin: true' } })
    await run(p, ctx)
    expect(upstreamHeaderMap(ctx)['x-name']).toBe('evex-admin: true')
  })
})

describe('client_cert templates', () => {
  const config = { add: { headers: ['x-s:$(client_cert.subject)', 'x-i:$(client_cert.issuer)', 'x-n:$(client_cert.serial)', 'x-cn:$(client_cert.cn)', 'x-o:$(client_cert.o)', 'x-t:$(client_cert.x5t_s256)'] } }

  it('a verified certificate fills every field, and the handshake is asked for one', async () => {
    const p = await build(plugin, config)
    expect(p.requestClientCertificate).toBe(true)
    expect(p.identityHeaders).toEqual(['x-s', 'x-i', 'x-n', 'x-cn', 'x-o', 'x-t'])
    const ctx = ctxWith({ certPem: pki.client1.certPem })
    await run(p, ctx)
    expect(upstreamHeaderMap(ctx)).toEqual({
      'x-s': 'CN=client1,O=Example Org',
      'x-i': 'CN=certbound Test Root CA,O=certbound test',
      'x-n': pki.client1.serialHex,
      'x-cn': 'client1',
      'x-o': 'Example Org',
      'x-t': pki.thumbprint(pki.client1),
    })
  })

  it('an unverified certificate gives only its thumbprint (its names are self-asserted)', async () => {
    const p = await build(plugin, config)
    const ctx = ctxWith({ certPem: pki.selfSigned.certPem, verified: false })
    await run(p, ctx)
    expect(upstreamHeaderMap(ctx)).toEqual({ 'x-t': pki.thumbprint(pki.selfSigned) })
  })

  it('mtls-auth\'s verified certificate (e.g. from a trusted proxy header) is preferred', async () => {
    const p = await build(plugin, config)
    const ctx = ctxWith({ plain: true })
    ctx.clientCertificate = { certificate: describeCertificate(new X509Certificate(pki.client2.certPem)), chain: [] }
    await run(p, ctx)
    expect(upstreamHeaderMap(ctx)['x-cn']).toBe('client2')
  })

  it('no certificate: the entries are skipped', async () => {
    const p = await build(plugin, config)
    const ctx = ctxWith()
    await run(p, ctx)
    expect(ctx.upstreamHeaders).toEqual([])
  })
})

describe('config validation (at load, with paths)', () => {
  it('the benchmark\'s configuration is valid', () => {
    expect(configIssues(plugin, { add: { headers: ['x-credential-sub:$(credential.sub)', 'x-credential-scope:$(credential.scope)', 'x-credential-client-id:$(credential.client_id)'] } })).toEqual([])
  })
  it('an unknown template root is reported at its entry', () => {
    expect(configIssues(plugin, { add: { headers: ['x-ok:1', 'x-bad:$(secrets.db)'] } })).toEqual([['add.headers.1', expect.stringMatching(/unknown template root "secrets"/)]])
  })
  it('body transformation is not supported', () => {
    expect(configIssues(plugin, { add: { body: ['a:1'] }, remove: { body: ['b'] } })).toEqual([
      ['remove.body', 'body transformation is not supported'],
      ['add.body', 'body transformation is not supported'],
    ])
  })
  it('http_method and replace.uri are rejected with a clear message', () => {
    expect(configIssues(plugin, { http_method: 'POST', replace: { uri: '/x' } })).toEqual([
      ['http_method', expect.stringMatching(/not supported/)],
      ['replace.uri', expect.stringMatching(/not supported/)],
    ])
  })
  it('entries must be name:value with a valid header name, not a gateway-managed one, and no control characters', () => {
    expect(configIssues(plugin, {
      add: { headers: ['novalue', 'bad name:1', 'Host:evil', 'x-empty:', 'x-crlf:a\r\nb'] },
      rename: { headers: ['x-a'] },
    })).toEqual([
      ['rename.headers.0', '"x-a" must be "old:new"'],
      ['add.headers.0', '"novalue" must be "name:value"'],
      ['add.headers.1', expect.stringMatching(/not a valid header name/)],
      ['add.headers.2', expect.stringMatching(/managed by the gateway/)],
      ['add.headers.3', expect.stringMatching(/empty/)],
      ['add.headers.4', expect.stringMatching(/control characters/)],
    ])
  })
  it('unknown keys are errors, at any level', () => {
    expect(configIssues(plugin, { add: { header: ['a:1'] } })).toEqual([['add', 'Unrecognized key: "header"']])
    expect(configIssues(plugin, { prepend: {} })).toEqual([['', 'Unrecognized key: "prepend"']])
    expect(configIssues(plugin, { replace: { header: [] } })).toEqual([['replace', 'Unrecognized key: "header"']])
  })
})
