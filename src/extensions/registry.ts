import type { GatewayExtension } from './types.js'

/** The core's own top-level sections beyond services/routes/plugins. */
export async function loadExtensions (): Promise<GatewayExtension[]> {
  const { authorizationServer } = await import('../authorization-server/index.js')
  return [authorizationServer as unknown as GatewayExtension]
}
