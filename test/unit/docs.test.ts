import { describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { generateReference } from '../../src/docs/generate.js'
import { loadPlugins } from '../../src/plugins-registry.js'
import { loadExtensions } from '../../src/extensions/registry.js'

describe('docs/configuration.md (one source of truth: the schemas)', () => {
  it('matches what the schemas generate (run `npm run docs` after changing a schema)', async () => {
    const expected = generateReference(await loadPlugins(), await loadExtensions())
    expect(readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')).toBe(expected)
  })

  it('documents every plugin and every error code', async () => {
    const text = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')
    for (const name of (await loadPlugins()).keys()) expect(text).toContain(`### ${name}`)
    expect(text).toContain('CB_ERR_TOKEN_BINDING_MISMATCH')
  })
})
