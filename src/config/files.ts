import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { ConfigText } from './config-set.js'
import { ConfigError, type Diagnostic } from './diagnostic.js'

const YAML_FILE = /\.ya?ml$/i

/**
 * The files behind `-c` arguments, as decK reads them: a file as given, a directory as every `*.yml` / `*.yaml`
 * in it (not recursive, sorted by name; hidden files such as editor swap files skipped). Absolute, each once.
 * Problems are returned, not thrown, so that one run reports every unreadable argument.
 */
export function expandConfigPaths (paths: readonly string[]): { files: string[], diagnostics: Diagnostic[] } {
  const files: string[] = []
  const diagnostics: Diagnostic[] = []
  const problem = (file: string, message: string): void => { diagnostics.push({ file, line: 1, col: 1, code: 'CB_CFG_FILE', path: '(file)', message }) }
  for (const p of paths) {
    const abs = resolve(p)
    let isDir: boolean
    try { isDir = statSync(abs).isDirectory() } catch (err) { problem(abs, `cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`); continue }
    if (!isDir) { if (!files.includes(abs)) files.push(abs); continue }
    let names: string[]
    try { names = readdirSync(abs) } catch (err) { problem(abs, `cannot list ${p}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`); continue }
    const found = names.filter(n => YAML_FILE.test(n) && !n.startsWith('.')).sort()
      .map(n => join(abs, n)).filter(f => { try { return statSync(f).isFile() } catch { return false } })
    if (found.length === 0) problem(abs, `${p} is a directory with no *.yml or *.yaml file`)
    for (const f of found) if (!files.includes(f)) files.push(f)
  }
  return { files, diagnostics }
}

/** Read every config file; throws one ConfigError naming every file that cannot be read. */
export function readConfigTexts (paths: readonly string[]): ConfigText[] {
  const { files, diagnostics } = expandConfigPaths(paths)
  const texts: ConfigText[] = []
  for (const file of files) {
    try {
      texts.push({ file, text: readFileSync(file, 'utf8') })
    } catch (err) {
      diagnostics.push({ file, line: 1, col: 1, code: 'CB_CFG_FILE', path: '(file)', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` })
    }
  }
  if (diagnostics.length > 0) throw new ConfigError(files.length > 0 ? files : paths.map(p => resolve(p)), diagnostics)
  return texts
}

/** Equal when every file has the same name and text: the watcher's "did anything change?". */
export function sameTexts (a: readonly ConfigText[] | undefined, b: readonly ConfigText[]): boolean {
  return a !== undefined && a.length === b.length && a.every((t, i) => t.file === b[i].file && t.text === b[i].text)
}
