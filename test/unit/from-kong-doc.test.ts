import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import { generateFromKong } from '../../src/docs/from-kong.js'
import { loadPlugins } from '../../src/plugins-registry.js'
import { REFUSED_ENTITIES } from '../../src/config/kong-entities.js'

const examples = new URL('../../examples/', import.meta.url)
const deck = new URL('kong-oidc-pop/deck/', examples)

describe('docs/from-kong.md (generated from the schemas and refusal lists)', () => {
  it('matches what the schemas generate (run `npm run docs` after changing a schema)', async () => {
    const expected = generateFromKong(await loadPlugins(), {
      callista: readFileSync(new URL('callista/gateway.yml', examples), 'utf8'),
      oidcPop: readdirSync(deck).sort().map(f => [f, readFileSync(new URL(f, deck), 'utf8')] as const),
    })
    expect(readFileSync(new URL('../../docs/from-kong.md', import.meta.url), 'utf8')).toBe(expected)
  })

  it('names every plugin, every plugin key and every refused Kong entity', async () => {
    const text = readFileSync(new URL('../../docs/from-kong.md', import.meta.url), 'utf8')
    for (const [name, def] of await loadPlugins()) {
      expect(text).toContain(`### ${name}`)
      const shape = (def.schema as unknown as { _zod: { def: { shape?: Record<string, unknown>, in?: { _zod: { def: { shape?: Record<string, unknown> } } } } } })._zod.def
      for (const k of Object.keys(shape.shape ?? shape.in?._zod.def.shape ?? {})) expect(text, `${name}.${k}`).toContain(`| \`${k}\` |`)
    }
    for (const k of Object.keys(REFUSED_ENTITIES)) expect(text).toContain(`| \`${k}\` | refused at load`)
  })
})
