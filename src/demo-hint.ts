import { dirname, relative, resolve } from 'node:path'
import type { Gateway } from './gateway.js'

/**
 * What `npm start` prints once the demo listens: the README's three curl commands, on the port and
 * directory actually in use (a token for client1, a call with it, the same call from client2's certificate).
 */
export function demoHint (gw: Gateway, configFile: string): string | undefined {
  const tls = gw.addresses().find(a => a.tls)
  const cfg = gw.current().config
  const issuer = (cfg.sections.authorization_server?.value as { issuer?: string } | undefined)?.issuer
  if (tls === undefined || issuer === undefined) return undefined
  const base = `https://localhost:${tls.port}`
  const dir = relative(process.cwd(), dirname(resolve(configFile))) || '.'
  const c = (n: string): string => `--cacert certs/ca.crt --cert certs/${n}.crt --key certs/${n}.key`
  return [
    '',
    `certbound demo is up on ${base} (admin: ${gw.adminUrl ?? 'off'}). Try, from ${dir}:`,
    '',
    '  # 1. a token for client1, authenticated with its certificate (RFC 8705 §2.1) and bound to it',
    `  TOKEN=$(curl -s ${c('client1')} -d grant_type=client_credentials -d client_id=client1 \\`,
    `    ${base}/oauth2/token | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')`,
    '  # 2. the protected route with the same certificate: 200, the echo shows the x-credential-* headers',
    `  curl -s ${c('client1')} -H "Authorization: Bearer $TOKEN" ${base}/anything`,
    '  # 3. the same token from client2\'s certificate: 401 invalid_token',
    `  curl -si ${c('client2')} -H "Authorization: Bearer $TOKEN" ${base}/anything`,
    '  # 4. DPoP (RFC 9449), no client certificate: a key, a DPoP-bound token, a call with a fresh proof',
    '  npx certbound dpop --new-key dpop.pem',
    `  DTOKEN=$(curl -s --cacert certs/ca.crt -u demo-dpop-client:demo-secret -H "DPoP: $(npx certbound dpop --key dpop.pem --method POST --url ${base}/oauth2/token)" \\`,
    `    -d grant_type=client_credentials ${base}/oauth2/token | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')`,
    `  curl -s --cacert certs/ca.crt -H "Authorization: DPoP $DTOKEN" -H "DPoP: $(npx certbound dpop --key dpop.pem --url ${base}/dpop --token $DTOKEN)" ${base}/dpop`,
    '',
  ].join('\n')
}
