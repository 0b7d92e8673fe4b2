import { readFileSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'

/** Quiet time after the last file-system event before the files are read (editors write in several steps). */
export const WATCH_DEBOUNCE_MS = 300

export interface ConfigWatchOptions {
  /** gateway.yml. */
  readonly configFile: string
  /** The text the gateway started from: an event that leaves the file with this text is not a change. */
  readonly initialText: string | undefined
  /** The config file has new, non-empty text. */
  onConfig(text: string): void
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
  const file = resolve(o.configFile)
  const configDir = dirname(file)
  const configName = basename(file)
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
      let text: string | undefined
      // gone between a delete and the rename that replaces it: the rename is another event
      try { text = readFileSync(file, 'utf8') } catch { text = undefined }
      // truncated to nothing is a writer caught mid-write, not a config
      if (text !== undefined && text !== lastText && text.trim() !== '') {
        lastText = text
        o.onConfig(text)
        return
      }
    }
    if (other) o.onFiles()
  }

  function onEvent (dir: string, name: string | null): void {
    const kubernetesSwap = name !== null && name.startsWith('..')
    let relevant = false
    if (dir === configDir && (name === null || name === configName || kubernetesSwap)) { configChanged = true; relevant = true }
    if (name === null || kubernetesSwap || files.has(join(dir, name))) {
      for (const f of files) if (dirname(f) === dir) { filesChanged = true; relevant = true; break }
    }
    if (!relevant) return
    clearTimeout(timer)
    timer = setTimeout(fire, debounceMs)
    timer.unref()
  }

  function sync (): void {
    const dirs = new Set([configDir, ...[...files].map(f => dirname(f))])
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
