import type { GatewayExtension } from './types.js'

/** The core's own top-level sections beyond services/routes/plugins. */
export async function loadExtensions (): Promise<GatewayExtension[]> {
  return []
}
