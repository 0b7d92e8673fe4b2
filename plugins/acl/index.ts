import { AUTHENTICATED_GROUPS, definePlugin, GatewayError, type PluginInstance, type RequestContext } from '../../src/plugin-api.js'
import { aclSchema, type AclConfig } from './schema.js'

/**
 * Kong's acl: the groups of the consumer an authentication plugin mapped (consumers[].acls), or else the
 * authenticated groups it established (mtls-auth skip_consumer_lookup + authenticated_group_by), checked against
 * allow or deny. Refused: 403 {"message":"You cannot consume this service"}; nobody authenticated: 401.
 */
export default definePlugin({
  name: 'acl',
  priority: 860,
  description: 'Allows or denies by group: the mapped consumer\'s acls or the certificate\'s authenticated group (Kong acl)',
  schema: aclSchema,
  create (config: AclConfig): PluginInstance {
    const allow = config.allow === undefined ? undefined : new Set(config.allow)
    const deny = config.deny === undefined ? undefined : new Set(config.deny)
    const blocked = (groups: readonly string[]): boolean => {
      if (allow !== undefined) return !groups.some(g => allow.has(g))
      return groups.some(g => deny!.has(g))
    }
    const refuse = (detail: string): GatewayError => new GatewayError('CB_ERR_ACL_FORBIDDEN', { detail })

    return {
      access: function aclAccess (ctx: RequestContext): void {
        const consumer = ctx.consumer
        const authenticated = ctx.get(AUTHENTICATED_GROUPS)
        const useAuthenticated = authenticated !== undefined && (consumer === undefined || config.always_use_authenticated_groups)
        if (consumer === undefined && authenticated === undefined) {
          // Kong: someone authenticated without a group (a token without consumer mapping) is forbidden; nobody is 401
          const someone = ctx.credential !== undefined || ctx.clientCertificate !== undefined
          if (someone) throw refuse('acl: the request was authenticated but mapped to no consumer and no group')
          throw new GatewayError('CB_ERR_NOT_AUTHENTICATED', { detail: 'acl: no authentication plugin identified the caller before acl' })
        }
        const groups = useAuthenticated ? authenticated : consumer!.groups
        if (blocked(groups)) {
          throw refuse(`acl: ${useAuthenticated ? 'authenticated groups' : `consumer ${consumer!.username ?? consumer!.id}'s groups`} [${groups.join(', ')}] are ${allow !== undefined ? 'not in allow' : 'in deny'}`)
        }
        if (!config.hide_groups_header && groups.length > 0) {
          ctx.setUpstreamHeader(useAuthenticated ? 'x-authenticated-groups' : 'x-consumer-groups', groups.join(', '))
        }
      },
    }
  },
})
