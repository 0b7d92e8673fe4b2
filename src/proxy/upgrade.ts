import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Duplex } from 'node:stream'
import type { CompiledService } from '../router/types.js'
import { headerObject, type HeaderList } from './headers.js'

/**
 * WebSocket (and other Upgrade) pass-through: replay the request head to the upstream with node:http and,
 * once it answers 101, splice the two sockets. http-proxy was not needed for this one job (undici serves every
 * other request; nothing else here needs it), so it is not a dependency.
 */
export function forwardUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer, service: CompiledService, path: string, headers: HeaderList): Promise<number> {
  return new Promise((resolve) => {
    const r = service.resolved
    const send = r.protocol === 'https' ? httpsRequest : httpRequest
    const upReq = send({
      host: r.host,
      port: r.port,
      method: req.method,
      path,
      headers: { ...headerObject(headers), connection: 'Upgrade', upgrade: req.headers.upgrade ?? 'websocket' },
      timeout: r.connectTimeout,
      rejectUnauthorized: r.tlsVerify,
    })
    const fail = (status: number, text: string): void => {
      if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
      resolve(status)
    }
    upReq.on('timeout', () => { upReq.destroy(); fail(504, 'Gateway Timeout') })
    upReq.on('error', () => fail(502, 'Bad Gateway'))
    upReq.on('response', (res) => {
      // the upstream refused the upgrade: relay its answer as a plain response
      let headText = `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`
      for (let i = 0; i < res.rawHeaders.length; i += 2) headText += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`
      socket.write(headText + 'connection: close\r\n\r\n')
      res.pipe(socket)
      resolve(res.statusCode ?? 502)
    })
    upReq.on('upgrade', (res, upSocket, upHead) => {
      let headText = `HTTP/1.1 ${res.statusCode ?? 101} ${res.statusMessage ?? 'Switching Protocols'}\r\n`
      for (let i = 0; i < res.rawHeaders.length; i += 2) headText += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`
      socket.write(headText + '\r\n')
      if (upHead.length > 0) socket.write(upHead)
      if (head.length > 0) upSocket.write(head)
      upSocket.on('error', () => socket.destroy())
      socket.on('error', () => upSocket.destroy())
      upSocket.pipe(socket)
      socket.pipe(upSocket)
      resolve(101)
    })
    upReq.end()
  })
}
