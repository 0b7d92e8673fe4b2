/**
 * The peer certificate's DER, read from OpenSSL's serialised TLS session (`SSL_SESSION_ASN1` in ssl/ssl_asn1.c:
 * a SEQUENCE whose `peer [3] EXPLICIT Certificate OPTIONAL` is the very certificate the handshake verified).
 *
 * Why not getPeerCertificate()/getPeerX509Certificate(): with OpenSSL 3 the first of those on a connection
 * converts the certificate's key to a legacy key object (60–140 µs), which made reading the client certificate
 * the largest cost of a new connection in the gateway's own code; i2d_SSL_SESSION re-uses the certificate's
 * cached encoding (~14 µs in all). Anything unexpected answers null, and the caller falls back to Node's API.
 */
const SEQUENCE = 0x30
const PEER = 0xa3 // [3] constructed

interface Tlv { readonly tag: number, readonly start: number, readonly end: number }

/** One DER TLV at `at`, or null if it does not fit in `end` (definite lengths of up to 4 bytes only). */
function tlv (b: Uint8Array, at: number, end: number): Tlv | null {
  if (at + 2 > end) return null
  const tag = b[at]
  let len = b[at + 1]
  let start = at + 2
  if (len >= 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 4 || start + n > end) return null
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]
    start += n
  }
  if (start + len > end) return null
  return { tag, start, end: start + len }
}

/** The DER of `peer`, or null if the session holds none or is not shaped as expected. A view into `session`. */
export function peerDerFromSession (session: Uint8Array): Uint8Array | null {
  const outer = tlv(session, 0, session.length)
  if (outer === null || outer.tag !== SEQUENCE) return null
  let at = outer.start
  while (at < outer.end) {
    const el = tlv(session, at, outer.end)
    if (el === null) return null
    if (el.tag === PEER) {
      const cert = tlv(session, el.start, el.end)
      if (cert === null || cert.tag !== SEQUENCE || cert.end !== el.end) return null
      return session.subarray(el.start, el.end)
    }
    at = el.end
  }
  return null
}
