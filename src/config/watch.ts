import { statSync, watch, type FSWatcher } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { ConfigText } from './config-set.js'
import { readConfigTexts, sameTexts } from './files.js'

/** Quiet time after the last file-system event before the files are read (editors write in several steps). */
export const WATCH_DEBOUNCE_MS = 300

export interface ConfigWatchOptions {
  /** The `-c` arguments: files, or directories (every *.yml / *.yaml in them, files added later included). */
  readonly configFile: string | readonly string[]
  /** The texts the gateway started from: an event that leaves the files with these texts is not a change. */
  readonly initialText: readonly ConfigText[] | undefined
  /** A config file has new text (and none is empty). */
  onConfig(texts: ConfigText[]): void
  /** One of the other watched files (listener certificates, keys, client CAs) changed. */
  onFiles(): void
  readonly debounceMs?: number
}

export interface ConfigWatch {
  /** Replace the set of other files watched (absolute paths), after a reload changed them. */
  setFiles(files: readonly string[]): void
  close(): void
}

/**
 * Watch gateway.yml and the files it names for the listeners. Directories are watched, not files: editors and
 * cert-manager replace a file by renaming another over it (a watch on the old inode would go quiet), and
 * Kubernetes swaps a `..data` symlink in a mounted ConfigMap or Secret. Events are debounced; a half-written
 * file fails validation and changes nothing, and the write that completes it is another event, which applies.
 */
export function watchConfigFiles (o: ConfigWatchOptions): ConfigWatch {
  const paths = (typeof o.configFile === 'string' ? [o.configFile] : o.configFile).map(p => resolve(p))
  // a directory argument: any YAML file in it counts (one added later too); a file: that name in its directory
  const configDirs = new Set<string>()
  const configNames = new Set<string>()
  for (const p of paths) {
    let isDir = false
    try { isDir = statSync(p).isDirectory() } catch { /* missing now: watch for it by name */ }
    if (isDir) configDirs.add(p)
    else configNames.add(p)
  }
  const watchedDirs = [...configDirs, ...[...configNames].map(f => dirname(f))]
  const debounceMs = o.debounceMs ?? WATCH_DEBOUNCE_MS
  const watchers = new Map<string, FSWatcher>()
  let files = new Set<string>()
  let lastText = o.initialText
  let configChanged = false
  let filesChanged = false
  let timer: NodeJS.Timeout | undefined
  let closed = false

  function fire (): void {
    timer = undefined
    const cfg = configChanged
    const other = filesChanged
    configChanged = false
    filesChanged = false
    if (closed) return
    if (cfg) {
      let texts: ConfigText[] | undefined
      // gone between a delete and the rename that replaces it: the rename is another event
      try { texts = readConfigTexts(paths) } catch { texts = undefined }
      // truncated to nothing is a writer caught mid-write, not a config
      if (texts !== undefined && !sameTexts(lastText, texts) && texts.every(t => t.text.trim() !== '')) {
        lastText = texts
        o.onConfig(texts)
        return
      }
    }
    if (other) o.onFiles()
  }

  function onEvent (dir: string, name: string | null): void {
    const kubernetesSwap = name !== null && name.startsWith('..')
    let relevant = false
    const isConfig = name === null || kubernetesSwap ||
      configNames.has(join(dir, name)) || (configDirs.has(dir) && /\.ya?ml$/i.test(name) && !name.startsWith('.'))
    if (watchedDirs.includes(dir) && isConfig) { configChanged = true; relevant = true }
    if (name === null || kubernetesSwap || files.has(join(dir, name))) {
      for (const f of files) if (dirname(f) === dir) { filesChanged = true; relevant = true; break }
    }
    if (!relevant) return
    clearTimeout(timer)
    timer = setTimeout(fire, debounceMs)
    timer.unref()
  }

  function sync (): void {
    const dirs = new Set([...watchedDirs, ...[...files].map(f => dirname(f))])
    for (const [dir, w] of watchers) if (!dirs.has(dir)) { w.close(); watchers.delete(dir) }
    for (const dir of dirs) {
      if (watchers.has(dir)) continue
      try {
        const w = watch(dir, { persistent: false }, (_ev, name) => onEvent(dir, name === null ? null : String(name)))
        w.on('error', () => { w.close(); watchers.delete(dir) })
        watchers.set(dir, w)
      } catch { /* a directory that cannot be watched: SIGHUP and POST /config still reload */ }
    }
  }

  sync()
  return {
    setFiles (next) {
      files = new Set(next.map(f => resolve(f)))
      sync()
    },
    close () {
      closed = true
      clearTimeout(timer)
      for (const w of watchers.values()) w.close()
      watchers.clear()
    },
  }
}
