import { relative } from 'node:path'
import type { ConfigErrorCode } from '../errors/codes.js'

export type PathKey = string | number

/** One problem found in a config file, with where it is. */
export interface Diagnostic {
  readonly file: string
  readonly line: number
  readonly col: number
  readonly code: ConfigErrorCode
  /** Key path: `services[0].routes[1].plugins[0].config.proof_of_possession_mtls`. */
  readonly path: string
  readonly message: string
}

export function formatPath (path: readonly PathKey[]): string {
  let out = ''
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`
    else out += out === '' ? k : `.${k}`
  }
  return out === '' ? '(root)' : out
}

export function formatDiagnostic (d: Diagnostic, cwd = process.cwd()): string {
  const file = d.file.startsWith('/') ? (relative(cwd, d.file) || d.file) : d.file
  const shown = file.startsWith('..') ? d.file : file
  return `${shown}:${d.line}:${d.col}  ${d.code}  ${d.path}\n    ${d.message}`
}

export function formatDiagnostics (file: string | readonly string[], ds: readonly Diagnostic[], cwd = process.cwd()): string {
  const lines = ds.map(d => formatDiagnostic(d, cwd))
  const show = (f: string): string => { const r = relative(cwd, f) || f; return r.startsWith('..') ? f : r }
  const files = typeof file === 'string' ? [file] : file
  lines.push(`${ds.length} error${ds.length === 1 ? '' : 's'} in ${files.map(show).join(', ')}; nothing was started`)
  return lines.join('\n')
}

/** Thrown when a config cannot be loaded; carries every diagnostic found. */
export class ConfigError extends Error {
  /** The first config file (several with `-c a.yml -c b.yml`: all of them are in `files`). */
  readonly file: string
  readonly files: readonly string[]
  constructor (file: string | readonly string[], readonly diagnostics: readonly Diagnostic[]) {
    super(formatDiagnostics(file, diagnostics))
    this.files = typeof file === 'string' ? [file] : [...file]
    this.file = this.files[0] ?? ''
    this.name = 'ConfigError'
  }
}

/** Levenshtein distance, for "did you mean" hints. */
export function closest (word: string, iterable: Iterable<string>): string | undefined {
  const candidates = [...iterable]
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const d = distance(word, c)
    if (d < bestD) { bestD = d; best = c }
  }
  if (best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3))) return best
  // a different suffix on the same stem (introspection_url → introspection_endpoint)
  let byPrefix: string | undefined
  let longest = 5
  for (const c of candidates) {
    let n = 0
    while (n < word.length && n < c.length && word[n] === c[n]) n++
    if (n > longest) { longest = n; byPrefix = c }
  }
  return byPrefix
}

function distance (a: string, b: string): number {
  const m = a.length; const n = b.length
  let prev = Array.from({ length: n + 1 }, (_, i) => i)
  for (let i = 1; i <= m; i++) {
    const cur = [i]
    for (let j = 1; j <= n; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[n]
}
