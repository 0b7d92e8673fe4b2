import { isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from 'yaml'
import type { Diagnostic, PathKey } from './diagnostic.js'
import { formatPath } from './diagnostic.js'
import type { ConfigErrorCode } from '../errors/codes.js'
import { explainYamlError } from './yaml-errors.js'

const ENV_RE = /\$\{\{\s*env\s+"([^"]*)"\s*\}\}/g

/**
 * A parsed YAML config with positions: every later stage reports problems by key path, and this maps
 * a path back to line:column (Kong's loader cannot; yaml's node ranges let us).
 */
export class ConfigSource {
  readonly doc: Document
  readonly diagnostics: Diagnostic[] = []

  /** Offset of the first character of each line, from the text itself (see {@link linePos}). */
  private readonly lineStarts: number[] = [0]
  private readonly textLength: number

  constructor (readonly file: string, text: string, env: NodeJS.ProcessEnv = process.env) {
    // decK substitutes on the raw text, so Kong's guides write `issuer: "${{ env "DECK_ISSUER" }}"`: double
    // quotes inside double quotes, which YAML cannot parse. Quote such a whole value with single quotes instead
    // (same length: every position stays right); the substitution then happens in the parsed value, where a
    // secret's `#` or `: ` cannot change the document's structure.
    text = text.replace(/"(\$\{\{\s*env\s+"[^"\n]*"\s*\}\})"/g, "'$1'")
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1)
    this.textLength = text.length
    this.doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, strict: true })
    const lines = new Set<number>()
    const starts = new Set<number>()
    for (const e of this.doc.errors) {
      const { offset, message } = explainYamlError(e, text)
      const pos = this.linePos(offset)
      // one mistake often makes the parser fail twice (on one line, or at one place): report it once
      if (lines.has(pos.line) || starts.has(e.pos[0])) continue
      lines.add(pos.line)
      starts.add(e.pos[0])
      this.diagnostics.push({ file, line: pos.line, col: pos.col, code: 'CB_CFG_YAML', path: '(yaml)', message })
    }
    if (this.doc.errors.length === 0) this.substituteEnv(env)
  }

  /** decK's `${{ env "NAME" }}`: replaced in every string value; a missing variable is an error. */
  private substituteEnv (env: NodeJS.ProcessEnv): void {
    const walk = (node: unknown, path: PathKey[]): void => {
      if (isMap(node)) {
        for (const pair of node.items) {
          const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
          walk(pair.value, [...path, k])
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => walk(item, [...path, i]))
      } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${{')) {
        node.value = node.value.replace(ENV_RE, (_m, name: string) => {
          const v = env[name]
          if (v === undefined) {
            this.report(path, 'CB_CFG_ENV', `environment variable ${name} is not set (referenced as \${{ env "${name}" }})`)
            return ''
          }
          return v
        })
      }
    }
    walk(this.doc.contents, [])
  }

  /**
   * 1-based line and column of a text offset. Computed from the text, not with yaml's LineCounter: the lexer
   * does not count the newlines inside a token it could not parse (`}(` then a newline), so its positions for
   * syntax errors could point past the end of a line.
   */
  linePos (offset: number): { line: number, col: number } {
    const at = Math.max(0, Math.min(offset, this.textLength))
    let lo = 0
    let hi = this.lineStarts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (this.lineStarts[mid] <= at) lo = mid
      else hi = mid - 1
    }
    return { line: lo + 1, col: at - this.lineStarts[lo] + 1 }
  }

  /** The document as plain data; undefined (reported) when aliases expand beyond 100 (a "billion laughs" file). */
  toJS (): unknown {
    try {
      return this.doc.toJS({ maxAliasCount: 100 })
    } catch (e) {
      // yaml throws a ReferenceError for excessive alias expansion: a config error, not a crash of the loader
      this.report([], 'CB_CFG_YAML', `${(e as Error).message} (more than 100 alias expansions)`)
      return undefined
    }
  }

  /** Position of the value at `path`, or of the closest existing ancestor. With `key`, the key's own position. */
  position (path: readonly PathKey[], key?: string): { line: number, col: number } {
    let node: unknown = this.doc.contents
    let best: unknown = node
    for (const k of path) {
      if (isMap(node)) {
        const pair = node.items.find(p => isPair(p) && isScalar(p.key) && String(p.key.value) === String(k))
        if (pair === undefined) break
        node = pair.value ?? pair.key
      } else if (isSeq(node) && typeof k === 'number') {
        node = node.items[k]
      } else break
      if (node === undefined || node === null) break
      best = node
    }
    if (key !== undefined && isMap(best)) {
      const pair = best.items.find(p => isPair(p) && isScalar(p.key) && String(p.key.value) === key)
      if (pair !== undefined && isScalar(pair.key)) best = pair.key
    }
    const range = (best as YamlNode | null)?.range
    if (range === undefined || range === null) return { line: 1, col: 1 }
    return this.linePos(range[0])
  }

  report (path: readonly PathKey[], code: ConfigErrorCode, message: string, key?: string): void {
    const pos = this.position(path, key)
    const full = key === undefined ? path : [...path, key]
    this.diagnostics.push({ file: this.file, line: pos.line, col: pos.col, code, path: formatPath(full), message })
  }
}
