import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendJson } from '../../errors/respond.js'
import type { CidrSet } from '../../net/cidr.js'
import type { AdminDashboardConfig } from '../../config/admin-dashboard.js'
import type { DashboardSummary } from './summary.js'
import { BasicAuthVerifier } from './basic-auth.js'
import { DASHBOARD_CSP, DASHBOARD_HTML } from './page.js'

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
}

/** One verifier per basic_auth setting (a reload that changes it gets a new one, and forgets verified headers). */
const verifiers = new WeakMap<object, BasicAuthVerifier>()

/**
 * GET / and GET /api/summary on the admin listener: admin_allow first (as POST /config), then HTTP Basic when
 * gateway.admin_dashboard.basic_auth is set. The page is one self-contained document (inline style and script,
 * pinned by hash in its Content-Security-Policy; no other origin is ever contacted) that polls /api/summary.
 */
export async function serveDashboard (
  d: { summary(): Promise<DashboardSummary>, settings(): AdminDashboardConfig },
  allow: CidrSet,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const settings = d.settings()
  if (!settings.enabled) return sendJson(res, 404, { message: 'Not found' })
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { message: 'use GET' }, { allow: 'GET, HEAD' })
  if (!allow.has(req.socket.remoteAddress)) return sendJson(res, 403, { message: 'the dashboard is served to gateway.admin_allow addresses only' })
  const ba = settings.basic_auth
  if (ba !== undefined) {
    let v = verifiers.get(ba)
    if (v === undefined) { v = new BasicAuthVerifier(ba); verifiers.set(ba, v) }
    const ok = await v.verify(req.headers.authorization)
    if (ok === 'busy') return sendJson(res, 503, { message: 'too many password checks at once; retry shortly' }, { 'retry-after': '1' })
    if (!ok) {
      return sendJson(res, 401, { message: 'authentication required' }, { 'www-authenticate': 'Basic realm="certbound admin", charset="UTF-8"' })
    }
  }
  if (path === '/api/summary') return sendJson(res, 200, await d.summary(), SECURITY_HEADERS)
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(DASHBOARD_HTML),
    'content-security-policy': DASHBOARD_CSP,
    ...SECURITY_HEADERS,
  })
  res.end(req.method === 'HEAD' ? undefined : DASHBOARD_HTML)
}
