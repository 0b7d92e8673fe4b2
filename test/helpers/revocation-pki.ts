/**
 * A test PKI whose client certificates publish their revocation status on loopback (issue 18): AIA OCSP URLs
 * pointing at real `openssl ocsp` responders, CRL Distribution Points at a real HTTP server. Generated at test
 * time; call `close()` in afterAll.
 */
import '../../src/pki/reflect-metadata.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as px from '@peculiar/x509'
import { issue, makeCrl, makeRoot, type Issued } from '../unit/helpers/mtls-pki.js'
import { freePort, startOcspResponder, writeIndex, type OcspResponder } from './ocsp-responder.js'

const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9'

export type Route = (req: IncomingMessage, res: ServerResponse) => void

export interface RevocationPki {
  readonly dir: string
  readonly root: Issued
  readonly server: Issued
  /** Good at the delegated responder (AIA) and on the CRL (CDP). */
  readonly good: Issued
  /** Revoked at the responder and on the CRL. */
  readonly revoked: Issued
  /** Not in the responder's index: OCSP "unknown". No CDP. */
  readonly unknown: Issued
  /** Good at the responder signed by the CA itself. */
  readonly caSigned: Issued
  /** AIA → a responder that signs with a key the CA never authorised. */
  readonly badSignature: Issued
  /** AIA → a port nobody listens on. */
  readonly down: Issued
  /** AIA → nobody; CDP → the CRL (fallback). */
  readonly downWithCrl: Issued
  /** AIA → an HTTP endpoint that never answers. */
  readonly slow: Issued
  /** AIA → 8 MiB of zeros. */
  readonly huge: Issued
  /** AIA → 200 with garbage. */
  readonly garbage: Issued
  /** No AIA; CDP → the DER CRL; not listed. */
  readonly crlGood: Issued
  /** No AIA; CDP → the PEM CRL; listed. */
  readonly crlRevoked: Issued
  /** No AIA; CDP → a CRL past its nextUpdate. */
  readonly crlExpired: Issued
  /** Neither AIA nor CDP. */
  readonly noInfo: Issued
  /** The delegated responder (id-kp-OCSPSigning, issued by root). */
  readonly responder: OcspResponder
  /** Signed by the root CA itself. */
  readonly caResponder: OcspResponder
  readonly rogueResponder: OcspResponder
  /** The CRL / bad-response HTTP server, its base URL, and hits per path. */
  readonly webUrl: string
  readonly hits: Map<string, number>
  /** Replace what a path of the web server serves. */
  route (path: string, r: Route): void
  file (name: string): string
  close (): Promise<void>
}

export async function createRevocationPki (): Promise<RevocationPki> {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-revocation-'))
  const file = (n: string): string => join(dir, n)
  const routes = new Map<string, Route>()
  const hits = new Map<string, number>()
  const open = new Set<ServerResponse>()
  const web: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    hits.set(path, (hits.get(path) ?? 0) + 1)
    open.add(res)
    res.once('close', () => open.delete(res))
    req.resume()
    const r = routes.get(path)
    if (r === undefined) { res.writeHead(404).end(); return }
    r(req, res)
  })
  await new Promise<void>(resolve => web.listen(0, '127.0.0.1', resolve))
  const webUrl = `http://127.0.0.1:${(web.address() as { port: number }).port}`
  const [pOk, pCa, pRogue, pDead] = [await freePort(), await freePort(), await freePort(), await freePort()]
  const url = (p: number): string => `http://127.0.0.1:${p}/`

  const root = await makeRoot('CN=Revocation Test Root,O=certbound test')
  const rogueRoot = await makeRoot('CN=Revocation Test Root,O=certbound test')
  const responderCert = await issue('CN=OCSP Responder,O=certbound test', root, { eku: [OCSP_SIGNING] })
  const rogue = await issue('CN=OCSP Responder,O=certbound test', rogueRoot, { eku: [OCSP_SIGNING] })
  const server = await issue('CN=localhost', root, { eku: [px.ExtendedKeyUsage.serverAuth], san: [{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }] })
  const leaf = async (cn: string, ocsp?: string, crl?: string): Promise<Issued> => {
    const extensions: px.Extension[] = []
    if (ocsp !== undefined) extensions.push(new px.AuthorityInfoAccessExtension({ ocsp: [ocsp] }))
    if (crl !== undefined) extensions.push(new px.CRLDistributionPointsExtension([crl]))
    return await issue(`CN=${cn},O=Example Org`, root, { extensions })
  }
  const good = await leaf('good', url(pOk), `${webUrl}/root.crl`)
  const revoked = await leaf('revoked', url(pOk), `${webUrl}/root.crl`)
  const unknown = await leaf('unknown', url(pOk))
  const caSigned = await leaf('ca-signed', url(pCa))
  const badSignature = await leaf('bad-signature', url(pRogue))
  const down = await leaf('down', url(pDead))
  const downWithCrl = await leaf('down-with-crl', url(pDead), `${webUrl}/root.crl`)
  const slow = await leaf('slow', `${webUrl}/slow`)
  const huge = await leaf('huge', `${webUrl}/huge`)
  const garbage = await leaf('garbage', `${webUrl}/garbage`)
  const crlGood = await leaf('crl-good', undefined, `${webUrl}/root.crl`)
  const crlRevoked = await leaf('crl-revoked', undefined, `${webUrl}/root.pem`)
  const crlExpired = await leaf('crl-expired', undefined, `${webUrl}/expired.crl`)
  const noInfo = await leaf('no-info')

  const save = (name: string, c: Issued): void => {
    writeFileSync(file(`${name}.crt`), c.certPem)
    writeFileSync(file(`${name}.key`), c.keyPem, { mode: 0o600 })
  }
  save('root', root)
  save('responder', responderCert)
  save('rogue', rogue)
  const now = Date.now()
  const all = [good, caSigned, badSignature, downWithCrl, crlGood, slow, huge, garbage]
  writeIndex(file('index.txt'), [...all.map(c => ({ cert: c.x509 })), { cert: revoked.x509, revokedAt: new Date(now - 3_600_000) }, { cert: crlRevoked.x509, revokedAt: new Date(now - 3_600_000) }])

  const crl = await makeCrl(root, [revoked.serial, crlRevoked.serial])
  const expired = await makeCrl(root, [], { thisUpdate: new Date(now - 2 * 86_400_000), nextUpdate: new Date(now - 86_400_000) })
  const serve = (body: Buffer | string, type: string): Route => (_req, res) => { res.writeHead(200, { 'content-type': type }).end(body) }
  routes.set('/root.crl', serve(crl.der, 'application/pkix-crl'))
  routes.set('/root.pem', serve(crl.pem, 'application/x-pem-file'))
  routes.set('/expired.crl', serve(expired.der, 'application/pkix-crl'))
  routes.set('/slow', () => { /* never answers */ })
  routes.set('/huge', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/ocsp-response' })
    let sent = 0
    const chunk = Buffer.alloc(64 * 1024)
    const pump = (): void => {
      while (sent < 8 * 1024 * 1024) {
        sent += chunk.length
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
      res.end()
    }
    res.once('error', () => undefined)
    pump()
  })
  routes.set('/garbage', serve(Buffer.from('30 not der at all'), 'application/ocsp-response'))

  const started: OcspResponder[] = []
  try {
    started.push(await startOcspResponder({ dir, index: file('index.txt'), caFile: file('root.crt'), signerCert: file('responder.crt'), signerKey: file('responder.key'), port: pOk }))
    started.push(await startOcspResponder({ dir, index: file('index.txt'), caFile: file('root.crt'), signerCert: file('root.crt'), signerKey: file('root.key'), port: pCa }))
    started.push(await startOcspResponder({ dir, index: file('index.txt'), caFile: file('root.crt'), signerCert: file('rogue.crt'), signerKey: file('rogue.key'), port: pRogue }))
  } catch (err) {
    for (const s of started) await s.stop()
    web.close()
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  const [responder, caResponder, rogueResponder] = started

  return {
    dir, root, server, good, revoked, unknown, caSigned, badSignature, down, downWithCrl, slow, huge, garbage, crlGood, crlRevoked, crlExpired, noInfo,
    responder, caResponder, rogueResponder, webUrl, hits,
    route: (path, r) => { routes.set(path, r) },
    file,
    close: async () => {
      for (const s of started) await s.stop()
      for (const res of open) res.destroy()
      web.closeAllConnections()
      await new Promise<void>(resolve => web.close(() => resolve()))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
