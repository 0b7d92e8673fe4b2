/**
 * The real client address behind trusted proxies (Kong's kong.client.get_forwarded_ip, nginx real_ip_recursive):
 * X-Forwarded-For is believed only from gateway.trusted_ips, read from the right.
 */
import { describe, it, expect } from 'vitest'
import { clientAddress, canonicalAddress } from '../../src/net/client-address.js'
import { CidrSet } from '../../src/net/cidr.js'

const proxies = new CidrSet(['10.0.0.0/8', '2001:db8:1::/48'])

describe('clientAddress: X-Forwarded-For only from trusted proxies', () => {
  it('an untrusted peer is the client, whatever X-Forwarded-For says', () => {
    expect(clientAddress('198.51.100.7', '203.0.113.9', proxies)).toBe('198.51.100.7')
    expect(clientAddress('198.51.100.7', undefined, new CidrSet([]))).toBe('198.51.100.7')
  })

  it('a trusted peer: the rightmost address that is not a trusted proxy', () => {
    expect(clientAddress('10.0.0.1', '203.0.113.9', proxies)).toBe('203.0.113.9')
    // the client prepended a forged address: the proxies appended the real one after it
    expect(clientAddress('10.0.0.1', '1.2.3.4, 203.0.113.9, 10.0.0.2', proxies)).toBe('203.0.113.9')
  })

  it('a chain of trusted proxies only: its leftmost address', () => {
    expect(clientAddress('10.0.0.1', '10.0.0.3, 10.0.0.2', proxies)).toBe('10.0.0.3')
  })

  it('a trusted peer without X-Forwarded-For is the client', () => {
    expect(clientAddress('10.0.0.1', undefined, proxies)).toBe('10.0.0.1')
    expect(clientAddress('10.0.0.1', '', proxies)).toBe('10.0.0.1')
  })

  it('garbage stops the walk at the last trusted hop (no untrusted word is taken)', () => {
    expect(clientAddress('10.0.0.1', '203.0.113.9, not-an-ip', proxies)).toBe('10.0.0.1')
    expect(clientAddress('10.0.0.1', 'not-an-ip, 10.0.0.2', proxies)).toBe('10.0.0.2')
  })

  it('ports and brackets as some proxies append them; IPv4-mapped IPv6 is the IPv4 client', () => {
    expect(clientAddress('10.0.0.1', '203.0.113.9:5555', proxies)).toBe('203.0.113.9')
    expect(clientAddress('10.0.0.1', '[2001:db8:2::5]:443', proxies)).toBe('2001:db8:2::5')
    expect(clientAddress('10.0.0.1', '2001:db8:2::5', proxies)).toBe('2001:db8:2::5')
    expect(clientAddress('::ffff:10.0.0.1', '::ffff:203.0.113.9', proxies)).toBe('203.0.113.9')
    expect(canonicalAddress('::ffff:127.0.0.1')).toBe('127.0.0.1')
    expect(canonicalAddress('::1')).toBe('::1')
  })
})
