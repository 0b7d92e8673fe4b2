/**
 * RFC 6749 Appendix B: `application/x-www-form-urlencoded` as the WHATWG URL standard serialises it (space → "+",
 * everything but ALPHA / DIGIT / "*-._" percent-encoded as UTF-8). The one encoder for introspection bodies and
 * for client_secret_basic, where id and secret are form-encoded before base64 (RFC 6749 §2.3.1).
 */
export function formEncode (s: string): string {
  return new URLSearchParams([['', s]]).toString().slice(1)
}

/** A form body from name/value pairs, in order. */
export function formBody (pairs: ReadonlyArray<readonly [string, string]>): string {
  let out = ''
  for (const [k, v] of pairs) out += (out === '' ? '' : '&') + formEncode(k) + '=' + formEncode(v)
  return out
}

/** RFC 6749 §2.3.1 client_secret_basic. */
export function basicAuthorization (clientId: string, secret: string): string {
  return 'Basic ' + Buffer.from(`${formEncode(clientId)}:${formEncode(secret)}`).toString('base64')
}
