/**
 * The smallest Reflect metadata API that lets `@peculiar/x509` load.
 *
 * @peculiar/x509 v2 registers its algorithms with tsyringe, and tsyringe throws at import time unless
 * `Reflect.getMetadata` exists ("tsyringe requires a reflect polyfill"). Its `@injectable()` classes have no
 * constructor parameters and its build emits no `design:*` metadata, so the polyfill is never asked for real
 * data (PeculiarVentures/x509#116). We add these three functions rather than a `reflect-metadata` dependency.
 * Import this module before `@peculiar/x509`; it leaves an existing polyfill alone.
 */

interface ReflectMetadataApi {
  defineMetadata (key: unknown, value: unknown, target: object): void
  getOwnMetadata (key: unknown, target: object): unknown
  getMetadata (key: unknown, target: object): unknown
}

const reflect = Reflect as typeof Reflect & Partial<ReflectMetadataApi>

if (typeof reflect.getMetadata !== 'function') installReflectMetadata(reflect)

function installReflectMetadata (target: Partial<ReflectMetadataApi>): void {
  const store = new WeakMap<object, Map<unknown, unknown>>()

  target.defineMetadata = function defineMetadata (key, value, obj) {
    let entries = store.get(obj)
    if (entries === undefined) store.set(obj, entries = new Map())
    entries.set(key, value)
  }
  target.getOwnMetadata = function getOwnMetadata (key, obj) {
    return store.get(obj)?.get(key)
  }
  // reflect-metadata semantics: getMetadata walks the prototype chain, getOwnMetadata does not
  target.getMetadata = function getMetadata (key, obj) {
    for (let o: object | null = obj; o !== null; o = Object.getPrototypeOf(o) as object | null) {
      const entries = store.get(o)
      if (entries?.has(key) === true) return entries.get(key)
    }
    return undefined
  }
}
