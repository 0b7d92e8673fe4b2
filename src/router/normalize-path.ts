/**
 * Normalise a request path before routing (RFC 3986 §6.2.2): percent-decode unreserved characters,
 * upper-case the remaining escapes, and remove dot segments (§5.2.4), so `/orders/%2e%2e/admin` and
 * `/orders/../admin` are both seen as `/admin` and cannot reach a route they should not. The upstream gets
 * the same normalised path the router decided on. Returns undefined for paths that are not valid.
 */
export function normalizePath (raw: string): string | undefined {
  if (raw.length === 0 || raw.charCodeAt(0) !== 47 /* / */) return undefined
  // fast path: nothing to decode and no dot segments or double slashes
  let simple = true
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i)
    if (c === 37 /* % */ || c < 33 || c > 126) { simple = false; break }
    if (c === 46 /* . */ && raw.charCodeAt(i - 1) === 47) { simple = false; break }
    if (c === 92 /* \ */) { simple = false; break }
  }
  if (simple) return raw
  let decoded = ''
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]
    const c = raw.charCodeAt(i)
    if (c < 33 || c > 126) return undefined // raw spaces, controls, non-ASCII: not a valid request-target path
    if (c === 92) return undefined // backslash: some upstreams treat it as a separator
    if (ch !== '%') { decoded += ch; continue }
    const hex = raw.slice(i + 1, i + 3)
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined
    const code = parseInt(hex, 16)
    if (isUnreserved(code)) decoded += String.fromCharCode(code)
    else if (code === 0) return undefined
    else decoded += '%' + hex.toUpperCase()
    i += 2
  }
  return removeDotSegments(decoded)
}

function isUnreserved (c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126
}

/** RFC 3986 §5.2.4, on an absolute path. */
export function removeDotSegments (path: string): string {
  if (!path.includes('.')) return path
  const segs = path.split('/')
  const out: string[] = []
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]
    if (s === '.') { if (i === segs.length - 1) out.push(''); continue }
    if (s === '..') { out.pop(); if (i === segs.length - 1) out.push(''); continue }
    out.push(s)
  }
  return '/' + out.join('/')
}
