/**
 * Typed keys for in-process services (deps.local): a key names a service and carries its type, so a plugin that
 * asks for a key gets a value of that type, and a part of the core registers only a value of that type under it.
 * Keys compare by `id`: two keys built from the same URL find the same service.
 */
export class ServiceKey<T> {
  declare readonly _type: T
  constructor (readonly id: string) {}
}

/** In-process providers that plugins can find by key instead of an HTTP round trip (e.g. a local issuer). */
export interface LocalServices {
  get<T>(key: ServiceKey<T>): T | undefined
}

/** Services by key: what an extension registers, and (merged) what deps.local answers from. */
export class ServiceMap implements LocalServices {
  private readonly byId = new Map<string, unknown>()

  set<T> (key: ServiceKey<T>, value: T): this {
    this.byId.set(key.id, value)
    return this
  }

  get<T> (key: ServiceKey<T>): T | undefined { return this.byId.get(key.id) as T | undefined }

  /** Copy every service of `other` into this map (a later registration under the same key wins). */
  addAll (other: ServiceMap): void {
    for (const [id, v] of other.byId) this.byId.set(id, v)
  }
}
