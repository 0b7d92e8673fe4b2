import { BlockList, isIP } from 'node:net'

/** A set of CIDRs (IPv4 and IPv6), compiled once; `has` accepts IPv4-mapped IPv6 peers (::ffff:a.b.c.d). */
export class CidrSet {
  private readonly list = new BlockList()
  readonly size: number

  constructor (cidrs: readonly string[]) {
    for (const c of cidrs) {
      const [ip, bits] = c.split('/')
      const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4'
      if (bits === undefined) this.list.addAddress(ip, type)
      else this.list.addSubnet(ip, Number(bits), type)
    }
    this.size = cidrs.length
  }

  has (addr: string | undefined): boolean {
    if (addr === undefined || this.size === 0) return false
    const v = isIP(addr)
    if (v === 4) return this.list.check(addr, 'ipv4')
    if (v === 6) {
      if (addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4) return this.list.check(addr.slice(7), 'ipv4') || this.list.check(addr, 'ipv6')
      return this.list.check(addr, 'ipv6')
    }
    return false
  }
}
