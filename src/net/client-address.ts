import { isIP } from 'node:net'
import type { CidrSet } from './cidr.js'

/** An IPv4-mapped IPv6 peer (`::ffff:192.0.2.1`, a dual-stack listener) is the same client as `192.0.2.1`. */
export function canonicalAddress (addr: string): string {
  return addr.length > 7 && addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr
}

/**
 * The real client address (Kong's `kong.client.get_forwarded_ip()` with nginx `real_ip_recursive on`): the TCP
 * peer, unless the peer is a trusted proxy (`gateway.trusted_ips`); then X-Forwarded-For is read from the right —
 * each proxy appends the address it received from — skipping trusted proxies, and the first untrusted address is
 * the client. Only a trusted hop's word is taken: an entry that is not an IP address stops the walk at the last
 * trusted hop, and a chain of nothing but trusted proxies gives its leftmost address.
 *
 * `forwardedFor` is the joined value of every X-Forwarded-For header (node joins repeated ones with ", ").
 */
export function clientAddress (peer: string, forwardedFor: string | undefined, trusted: CidrSet): string {
  let client = canonicalAddress(peer)
  if (forwardedFor === undefined || forwardedFor === '' || !trusted.has(peer)) return client
  let end = forwardedFor.length
  while (end > 0) {
    const start = forwardedFor.lastIndexOf(',', end - 1) + 1
    const hop = stripPort(forwardedFor.slice(start, end).trim())
    if (isIP(hop) === 0) return client
    client = canonicalAddress(hop)
    if (!trusted.has(hop)) return client
    end = start - 1
  }
  return client
}

/** `192.0.2.1:1234` and `[2001:db8::1]:1234` (some proxies append the port) → the address alone. */
function stripPort (hop: string): string {
  if (hop.charCodeAt(0) === 91) { const e = hop.indexOf(']'); return e < 0 ? hop : hop.slice(1, e) }
  const c = hop.indexOf(':')
  return c > 0 && hop.indexOf(':', c + 1) < 0 ? hop.slice(0, c) : hop
}
