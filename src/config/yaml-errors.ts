import type { YAMLError } from 'yaml'

/**
 * A YAML syntax error in plain words, at the place the mistake is (not where the parser gave up): an unclosed "[",
 * "{" or quote points at its opening, a key whose next line is indented too far points at that line. The parser's
 * own wording follows in parentheses for anything not covered.
 */
export function explainYamlError (e: YAMLError, text: string): { offset: number, message: string } {
  const start = e.pos[0]
  const first = e.message.split('\n')[0]
  const lineStart = (o: number): number => text.lastIndexOf('\n', Math.max(0, o - 1)) + 1
  const lineText = (o: number): string => { const s = lineStart(o); const n = text.indexOf('\n', s); return text.slice(s, n < 0 ? undefined : n) }
  const nextLine = (o: number): number | undefined => { const n = text.indexOf('\n', o); return n < 0 || n + 1 >= text.length ? undefined : n + 1 }
  const firstChar = (o: number): number => { let i = o; while (text[i] === ' ') i++; return i }
  switch (e.code) {
    case 'BAD_INDENT':
      if (/^Flow (sequence|map)/.test(first)) {
        const seq = first.startsWith('Flow sequence')
        const open = unclosed(text, start, seq ? '[' : '{', seq ? ']' : '}')
        return {
          offset: open ?? start,
          message: `a flow ${seq ? 'sequence "[" ' : 'mapping "{" '}opened here is never closed with "${seq ? ']' : '}'}" (it must close on its line or before the next key)`,
        }
      }
      if (first.startsWith('All mapping items must start at the same column')) {
        return { offset: firstChar(lineStart(start)), message: 'this key is not at the same column as the keys above it in the same mapping: indent it like them' }
      }
      break
    case 'TAB_AS_INDENT':
      return { offset: start, message: 'a tab is used for indentation: YAML indents with spaces only' }
    case 'BLOCK_AS_IMPLICIT_KEY': {
      const n = nextLine(start)
      const at = n === undefined ? start : firstChar(n)
      return { offset: at, message: `this line is indented deeper than "${lineText(start).trim()}" above it, which already has a value: indent it like its sibling keys` }
    }
    case 'MULTILINE_IMPLICIT_KEY': {
      const line = lineText(start).trim()
      if (/^[^:#]+:\S/.test(line.replace(/^- /, ''))) return { offset: start, message: `"${line}" needs a space after the colon ("key: value")` }
      return { offset: start, message: `"${line}" is not a "key: value" line: a key needs ":" after it (or the next line is indented too far)` }
    }
    case 'DUPLICATE_KEY': {
      const key = lineText(start).trim().replace(/^- /, '').split(':')[0]
      return { offset: start, message: `"${key}" appears twice in the same mapping (map keys must be unique); this is the second` }
    }
    case 'MISSING_CHAR':
      if (/quote/.test(first)) {
        const dq = first.includes('"')
        const open = text.lastIndexOf(dq ? '"' : "'", Math.min(start, text.length) - 1)
        return { offset: open >= 0 ? open : start, message: `a string opened with ${dq ? '"' : "'"} here is never closed` }
      }
      break
    case 'MULTIPLE_DOCS':
      return { offset: start, message: 'a config file holds one YAML document: remove this "---" (or split the config into several files: -c a.yml -c b.yml)' }
    case 'BAD_ALIAS':
      return { offset: start, message: `${first} (an alias *name needs an anchor &name before it)` }
  }
  return { offset: start, message: first }
}

/** The last opening bracket before `pos` that no closing bracket matches (skipping quoted text). */
function unclosed (text: string, pos: number, openCh: string, closeCh: string): number | undefined {
  const stack: number[] = []
  let quote: string | undefined
  for (let i = 0; i < Math.min(pos, text.length); i++) {
    const c = text[i]
    if (quote !== undefined) { if (c === quote && text[i - 1] !== '\\') quote = undefined; continue }
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) { const n = text.indexOf('\n', i); if (n < 0) break; i = n; continue }
    if ((c === '"' || c === "'") && (i === 0 || /[\s,[{:]/.test(text[i - 1]))) { quote = c; continue }
    if (c === openCh) stack.push(i)
    else if (c === closeCh) stack.pop()
  }
  return stack.length > 0 ? stack[stack.length - 1] : undefined
}
