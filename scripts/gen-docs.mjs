#!/usr/bin/env node
// Writes docs/configuration.md and docs/from-kong.md from the schemas (run after `npm run build`): `npm run docs`.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
const { generateReference } = await import('../dist/src/docs/generate.js')
const { loadPlugins } = await import('../dist/src/plugins-registry.js')
const { loadExtensions } = await import('../dist/src/extensions/registry.js')
const text = generateReference(await loadPlugins(), await loadExtensions())
writeFileSync(new URL('../docs/configuration.md', import.meta.url), text)
console.log(`docs/configuration.md: ${text.split('\n').length} lines`)
const { generateFromKong } = await import('../dist/src/docs/from-kong.js')
const examples = new URL('../examples/', import.meta.url)
const deck = new URL('kong-oidc-pop/deck/', examples)
const fromKong = generateFromKong(await loadPlugins(), {
  callista: readFileSync(new URL('callista/gateway.yml', examples), 'utf8'),
  oidcPop: readdirSync(deck).sort().map(f => [f, readFileSync(new URL(f, deck), 'utf8')]),
})
writeFileSync(new URL('../docs/from-kong.md', import.meta.url), fromKong)
console.log(`docs/from-kong.md: ${fromKong.split('\n').length} lines`)
