#!/usr/bin/env node
// Scenario S3t: the floor of any gateway built on node:tls. A TLS 1.3 server with the listener settings certbound
// uses (requestCert, the bench CA, rejectUnauthorized) that reads one request head and answers it with a canned
// 200 naming the client certificate's CN: no HTTP parser, no proxying, no token, no log. Its CPU per new connection
// is what Node and OpenSSL take for the handshake and a socket, which no option of a gateway on node:tls removes;
// compared with HAProxy's full chain (S2) in the same run it says how far "≥ 0.9× HAProxy's handshake rate" is
// reachable at all (bench/README.md, "New-connection cost").
//
// usage: node node-tls-floor.mjs --port 8443 --pki /tmp/bench/pki
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const { values: a } = parseArgs({
  options: {
    port: { type: 'string', default: '8443' },
    host: { type: 'string', default: '127.0.0.1' },
    pki: { type: 'string', default: '/tmp/bench/pki' },
  },
})
const pki = (f) => readFileSync(join(a.pki, f))
const server = tls.createServer({
  cert: pki('server.crt'), key: pki('server.key'), ca: pki('ca.crt'),
  requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2',
}, (socket) => {
  let head = ''
  let cn
  socket.setEncoding('latin1')
  socket.on('data', (chunk) => {
    head += chunk
    // one answer per request head (keep-alive: several per connection; a body is never sent by the load generator)
    for (let end = head.indexOf('\r\n\r\n'); end !== -1; end = head.indexOf('\r\n\r\n')) {
      const req = head.slice(0, end)
      head = head.slice(end + 4)
      cn ??= socket.getPeerX509Certificate()?.subject.match(/CN=([^\n]*)/)?.[1] ?? ''
      const close = /\r\nconnection:\s*close/i.test(req)
      const body = `CN=${cn}\n`
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n${close ? 'connection: close\r\n' : ''}\r\n${body}`)
      if (close) { socket.end(); return }
    }
    if (head.length > 16384) socket.destroy()
  })
  socket.on('error', () => socket.destroy())
})
server.listen(Number(a.port), a.host, () => { console.log(`node-tls-floor on https://${a.host}:${a.port}`) })
process.on('SIGTERM', () => process.exit(0))
