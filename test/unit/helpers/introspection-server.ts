/**
 * A small but real RFC 7662 introspection endpoint over HTTPS (with optional client certificates), answering from
 * a table of tokens and recording every request, so tests can count calls and inspect the exact form sent.
 */
import { createServer, type Server } from 'node:https'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'

export interface TokenAnswer {
  /** HTTP status (default 200). */
  readonly status?: number
  /** JSON body (default `{ "active": false }`). */
  readonly json?: unknown
  /** Raw body instead of json. */
  readonly raw?: string
  /** Answer after this many ms. */
  readonly delayMs?: number
}

export interface RecordedRequest {
  readonly method: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
  readonly form: URLSearchParams
  /** CN of the client certificate presented in TLS, if any. */
  readonly clientCn: string | undefined
}

export interface IntrospectionServer {
  readonly url: string
  readonly requests: RecordedRequest[]
  readonly tokens: Map<string, TokenAnswer>
  /** Calls made for `token` (all calls when omitted). */
  calls (token?: string): number
  /** Stop listening and drop open connections (the IdP is "down"). */
  close (): Promise<void>
}

export async function startIntrospectionServer (tls: { certPem: string, keyPem: string, caPem: string }): Promise<IntrospectionServer> {
  const requests: RecordedRequest[] = []
  const tokens = new Map<string, TokenAnswer>()
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem, ca: [tls.caPem], requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const form = new URLSearchParams(body)
      const peer = (req.socket as TLSSocket).getPeerCertificate()
      requests.push({ method: req.method ?? '', headers: req.headers, body, form, clientCn: typeof peer?.subject?.CN === 'string' ? peer.subject.CN : undefined })
      const answer = tokens.get(form.get('token') ?? '') ?? {}
      const send = (): void => {
        const text = answer.raw ?? JSON.stringify(answer.json ?? { active: false })
        res.writeHead(answer.status ?? 200, { 'content-type': 'application/json' })
        res.end(text)
      }
      if (answer.delayMs !== undefined) setTimeout(send, answer.delayMs)
      else send()
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `https://127.0.0.1:${port}/introspect`,
    requests,
    tokens,
    calls (token?: string) {
      return token === undefined ? requests.length : requests.filter(r => r.form.get('token') === token).length
    },
    close () {
      server.closeAllConnections()
      return new Promise(resolve => server.close(() => resolve()))
    },
  }
}
