import { readdirSync, existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { join } from 'node:path'
import type { PluginDefinition } from './pipeline/types.js'

let cached: Promise<Map<string, PluginDefinition>> | undefined

/**
 * Every plugin under plugins/<name>/index.(js|ts), found by listing the folder: the core names no plugin.
 * Compiled code loads the compiled plugins; the test runner (TypeScript sources) loads the sources.
 */
export function loadPlugins (): Promise<Map<string, PluginDefinition>> {
  cached ??= discover()
  return cached
}

async function discover (): Promise<Map<string, PluginDefinition>> {
  const here = fileURLToPath(import.meta.url)
  const ext = here.endsWith('.ts') ? 'ts' : 'js'
  const dir = fileURLToPath(new URL('../plugins/', import.meta.url))
  const out = new Map<string, PluginDefinition>()
  const priorities = new Map<number, string>()
  if (!existsSync(dir)) return out
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory() || entry.name.startsWith('_')) continue
    const file = join(dir, entry.name, `index.${ext}`)
    if (!existsSync(file)) continue
    const mod = await import(pathToFileURL(file).href) as { default?: PluginDefinition }
    const def = mod.default
    if (def === undefined || typeof def.create !== 'function') throw new TypeError(`plugins/${entry.name}/index.${ext} has no default export made with definePlugin()`)
    if (def.name !== entry.name) throw new TypeError(`plugins/${entry.name} declares the name "${def.name}"; the folder and the name must match`)
    const clash = priorities.get(def.priority)
    if (clash !== undefined) throw new TypeError(`plugins ${clash} and ${def.name} share priority ${def.priority}; priorities fix the chain order and must be unique`)
    priorities.set(def.priority, def.name)
    out.set(def.name, def)
  }
  return out
}
