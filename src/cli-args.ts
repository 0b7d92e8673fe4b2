/**
 * node:util parseArgs's TypeErrors (ERR_PARSE_ARGS_*) in our usage wording: the first sentence only (node's wording
 * ends with a hint to use "--" that does not apply here), lower-case like every other usage message. Anything else
 * is returned as undefined (a programmer error, rethrown by the caller).
 */
export function parseArgsMessage (e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException).code ?? ''
  if (!code.startsWith('ERR_PARSE_ARGS')) return undefined
  return (e as Error).message.replace(/\. To specify .*$/s, '').replace(/^Unknown option/, 'unknown option').replace(/^Option/, 'option')
}
