import { z } from 'zod'

/** Kong's tls-handshake-modifier: one key, one value. */
export const schema = z.strictObject({
  tls_client_certificate: z.enum(['REQUEST']).default('REQUEST')
    .describe('REQUEST: the TLS handshake asks the client for a certificate without requiring one (the only value, as in Kong)'),
})

export type TlsHandshakeModifierConfig = z.output<typeof schema>
