import { z } from 'zod'
import { parseSecretHash } from '../authorization-server/secret-hash.js'

/** gateway.admin_dashboard: the dashboard page (GET /) and its JSON (GET /api/summary) on the admin listener. */
export const adminDashboardSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('Serve the dashboard (GET /) and GET /api/summary on admin_listen; both are limited to admin_allow addresses'),
  basic_auth: z.strictObject({
    username: z.string().min(1).max(128).regex(/^[^:\s]+$/, 'no colon or whitespace (RFC 7617 §2)').describe('User name the dashboard asks for (HTTP Basic, RFC 7617)'),
    password_hash: z.string().refine(s => parseSecretHash(s) !== undefined, 'expected a $scrypt$ln=…,r=…,p=…$salt$hash string: make one with `echo -n "$PASSWORD" | certbound hash-secret`')
      .describe('scrypt hash of the password, as `certbound hash-secret` prints it; the password itself is never in the config'),
  }).optional().describe('Also require HTTP Basic authentication for the dashboard, on top of admin_allow'),
})

export type AdminDashboardConfig = z.output<typeof adminDashboardSchema>
