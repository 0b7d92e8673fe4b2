import { z } from 'zod'

const group = z.string().min(1)

/** Kong's acl plugin keys. */
export const aclSchema = z.strictObject({
  allow: z.array(group).min(1).optional()
    .describe('Groups allowed: a consumer (or certificate) in none of them is refused 403. Give allow or deny, not both'),
  deny: z.array(group).min(1).optional()
    .describe('Groups refused 403; everyone else passes. Give allow or deny, not both'),
  hide_groups_header: z.boolean().default(false)
    .describe('Do not send the groups upstream (X-Consumer-Groups for a consumer, X-Authenticated-Groups for a certificate\'s group)'),
  always_use_authenticated_groups: z.boolean().default(false)
    .describe('Check the authenticated groups (mtls-auth authenticated_group_by) even when a consumer was mapped'),
  include_consumer_groups: z.literal(false).default(false)
    .describe('Kong: also match Kong consumer groups. Only false: consumer groups are not implemented (use consumers[].acls)'),
}).superRefine(function checkAcl (c, ctx) {
  if ((c.allow === undefined) === (c.deny === undefined)) {
    ctx.addIssue({ code: 'custom', path: [c.allow === undefined ? 'allow' : 'deny'], message: 'give allow or deny (exactly one of them), as Kong' })
  }
})

export type AclConfig = z.output<typeof aclSchema>
