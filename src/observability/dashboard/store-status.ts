/**
 * What the dashboard shows of the shared-state store. The store seam (memory / Redis behind one interface) is
 * being built separately; until it registers a provider, the gateway's state is process memory. A provider must
 * answer quickly and never throw; `latency_ms` is its last round trip, measured by the store itself.
 */
export interface StoreStatus {
  readonly backend: string
  readonly connected?: boolean
  readonly latency_ms?: number
  readonly detail?: string
}

export type StoreStatusProvider = () => StoreStatus | Promise<StoreStatus>

export const memoryStoreStatus: StoreStatusProvider = function memoryStoreStatus () { return { backend: 'memory' } }
