import { readFileSync } from 'node:fs'

/**
 * The C allocator this process runs on, for the start line: 'jemalloc' when the library is mapped (preloaded by
 * bin/with-jemalloc.sh, or by an operator's own LD_PRELOAD), else 'system'. Read once, at start, from
 * /proc/self/maps; 'unknown' where there is no /proc (not Linux).
 */
export function allocatorInUse (): 'jemalloc' | 'system' | 'unknown' {
  let maps: string
  try { maps = readFileSync('/proc/self/maps', 'latin1') } catch { return 'unknown' }
  return /libjemalloc[^/\n]*$/m.test(maps) ? 'jemalloc' : 'system'
}
