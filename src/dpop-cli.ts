import { createPrivateKey, createPublicKey, generateKeyPairSync, hash, randomBytes, type KeyObject } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { SignJWT, exportJWK } from 'jose'
import { jwkThumbprint } from './auth/dpop/proof.js'
import { normaliseHtu } from './auth/dpop/htu.js'
import { parseArgsMessage } from './cli-args.js'

export const DPOP_HELP = `usage: certbound dpop --new-key KEY.pem
       certbound dpop --key KEY.pem --url URL [--method GET] [--token TOKEN] [--nonce NONCE]

  --new-key FILE   write a new EC P-256 private key (PKCS#8 PEM, mode 0600; an existing file is not
                   overwritten) and print its RFC 7638 thumbprint (the jkt a DPoP-bound token will carry)
  --key FILE       the private key to sign with: EC P-256 (ES256), Ed25519 (EdDSA) or RSA ≥ 2048 (PS256)
  --url URL        the request URI (htu); its query and fragment are dropped (RFC 9449 §4.2)
  --method METHOD  the request method (htm), default GET
  --token TOKEN    the access token the proof goes with (adds ath = base64url(SHA-256(token)))
  --nonce NONCE    the server's DPoP-Nonce, when it asked for one (RFC 9449 §8/§9)

prints one DPoP proof (RFC 9449 §4) on stdout, for example:
  curl -H "Authorization: DPoP $T" -H "DPoP: $(certbound dpop --key k.pem --url https://api/x --token $T)" https://api/x`

const DPOP_USAGE = 'certbound dpop --new-key KEY.pem | --key KEY.pem --url URL [--method M] [--token T] [--nonce N]'

/** The JWS algorithm a key signs proofs with. */
function algFor (key: KeyObject): string {
  const t = key.asymmetricKeyType
  if (t === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  if (t === 'ed25519') return 'EdDSA'
  if (t === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'PS256'
  throw new Error('the key must be EC P-256, Ed25519 or RSA of at least 2048 bits')
}

/** `certbound dpop`: a DPoP key, or one proof. Returns the exit code; output and errors through the callbacks. */
export async function dpopCommand (argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        'new-key': { type: 'string' }, key: { type: 'string' }, url: { type: 'string' },
        method: { type: 'string', default: 'GET' }, token: { type: 'string' }, nonce: { type: 'string' },
      },
      strict: true,
    }).values
  } catch (e) {
    const msg = parseArgsMessage(e)
    if (msg === undefined) throw e
    err(`certbound dpop: ${msg} (usage: ${DPOP_USAGE})`)
    return 2
  }

  if (values['new-key'] !== undefined) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    try {
      writeFileSync(values['new-key'], privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' })
    } catch (e) {
      err(`dpop: cannot write ${values['new-key']}: ${(e as NodeJS.ErrnoException).code === 'EEXIST' ? 'it exists (not overwritten)' : (e as Error).message}`)
      return 1
    }
    out(jwkThumbprint(createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, unknown>)!)
    return 0
  }

  if (values.key === undefined || values.url === undefined) { err(`certbound dpop: give --new-key FILE, or --key FILE and --url URL (usage: ${DPOP_USAGE})`); return 2 }
  let key: KeyObject
  let alg: string
  try {
    key = createPrivateKey(readFileSync(values.key))
    alg = algFor(key)
  } catch (e) { err(`dpop: ${values.key}: ${(e as Error).message}`); return 1 }
  const htu = normaliseHtu(values.url)
  if (htu === undefined) { err(`dpop: --url ${values.url} is not an absolute http(s) URL`); return 1 }
  const method = values.method!.toUpperCase()
  if (!/^[A-Z]+$/.test(method)) { err(`dpop: --method ${values.method!} is not an HTTP method`); return 1 }
  // the public half only: a private member in the header is refused by every verifier (RFC 9449 §4.3)
  const jwk = await exportJWK(createPublicKey(key))
  const claims: Record<string, unknown> = { jti: randomBytes(16).toString('base64url'), htm: method, htu, iat: Math.floor(Date.now() / 1000) }
  if (values.token !== undefined) claims.ath = hash('sha256', values.token, 'base64url')
  if (values.nonce !== undefined) claims.nonce = values.nonce
  out(await new SignJWT(claims).setProtectedHeader({ typ: 'dpop+jwt', alg, jwk }).sign(key))
  return 0
}
