import type { IncomingMessage } from 'node:http'
import { OAuthError } from './oauth-error.js'

/** Parameters that may repeat: RFC 8707 `resource`, and `audience` (RFC 8693 style). Everything else: once. */
const REPEATABLE = new Set(['resource', 'audience'])

/** Form parameters; each name maps to its values (more than one only for REPEATABLE names). */
export type FormParams = ReadonlyMap<string, readonly string[]>

/** The single value of a parameter, or undefined. (Duplicates were refused when parsing.) */
export function param (p: FormParams, name: string): string | undefined {
  return p.get(name)?.[0]
}

/**
 * Read an `application/x-www-form-urlencoded` body (RFC 6749 §3.2, §4.4.2) with a hard size limit: a
 * Content-Length over the limit is refused before reading, a chunked body as soon as it crosses it.
 */
export function readFormBody (req: IncomingMessage, limit: number): Promise<FormParams> {
  const ct = req.headers['content-type']
  const [media, ...ctParams] = (ct ?? '').split(';').map(s => s.trim().toLowerCase())
  if (media !== 'application/x-www-form-urlencoded') {
    return Promise.reject(new OAuthError('invalid_request', 'the request body must be application/x-www-form-urlencoded'))
  }
  const charset = ctParams.find(p => p.startsWith('charset='))?.slice(8).replace(/^"(.*)"$/, '$1')
  if (charset !== undefined && charset !== 'utf-8') {
    return Promise.reject(new OAuthError('invalid_request', 'the request body must be UTF-8'))
  }
  const cl = req.headers['content-length']
  if (cl !== undefined && Number(cl) > limit) {
    return Promise.reject(new OAuthError('invalid_request', `the request body exceeds ${limit} bytes`))
  }
  return new Promise<FormParams>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const cleanup = () => {
      req.removeListener('data', onData)
      req.removeListener('end', onEnd)
      req.removeListener('error', onError)
      req.removeListener('aborted', onAborted)
    }
    function onData (chunk: Buffer) {
      size += chunk.length
      if (size > limit) {
        cleanup()
        req.pause() // stop reading; the answer closes the connection
        reject(new OAuthError('invalid_request', `the request body exceeds ${limit} bytes`))
        return
      }
      chunks.push(chunk)
    }
    function onEnd () {
      cleanup()
      try { resolve(parseForm(Buffer.concat(chunks))) } catch (e) { reject(e as Error) }
    }
    function onError (err: Error) { cleanup(); reject(err) }
    function onAborted () { cleanup(); reject(new Error('request aborted')) }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('aborted', onAborted)
  })
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Decode a form body. Empty values count as omitted (RFC 6749 §3.1); repeated parameters are refused (§3.2). */
export function parseForm (body: Buffer): FormParams {
  let text: string
  try { text = utf8.decode(body) } catch { throw new OAuthError('invalid_request', 'the request body is not valid UTF-8') }
  const out = new Map<string, string[]>()
  if (text === '') return out
  for (const pair of text.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const name = formDecode(eq < 0 ? pair : pair.slice(0, eq))
    const value = eq < 0 ? '' : formDecode(pair.slice(eq + 1))
    if (name === undefined || value === undefined) throw new OAuthError('invalid_request', 'the request body is not a valid form (bad percent-encoding)')
    if (value === '') continue
    const list = out.get(name)
    if (list === undefined) out.set(name, [value])
    else if (REPEATABLE.has(name)) list.push(value)
    else throw new OAuthError('invalid_request', `parameter ${safeName(name)} is repeated (RFC 6749 §3.2)`)
  }
  return out
}

/** application/x-www-form-urlencoded decoding of one name or value; undefined if malformed. */
export function formDecode (s: string): string | undefined {
  try { return decodeURIComponent(s.replace(/\+/g, ' ')) } catch { return undefined }
}

/** A parameter name fit for an error message (it is client input). */
function safeName (name: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(name) ? name : '(a parameter)'
}
