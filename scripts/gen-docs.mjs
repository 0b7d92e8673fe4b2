#!/usr/bin/env node
// Writes docs/configuration.md from the schemas (run after `npm run build`): `npm run docs`.
import { writeFileSync } from 'node:fs'
const { generateReference } = await import('../dist/src/docs/generate.js')
const { loadPlugins } = await import('../dist/src/plugins-registry.js')
const { loadExtensions } = await import('../dist/src/extensions/registry.js')
const text = generateReference(await loadPlugins(), await loadExtensions())
writeFileSync(new URL('../docs/configuration.md', import.meta.url), text)
console.log(`docs/configuration.md: ${text.split('\n').length} lines`)
