import { z } from 'zod'

export const schema = z.strictObject({
  status_code: z.number().int().min(100).max(599).default(503).describe('Status of the response'),
  message: z.string().optional().describe('Answered as {"message": ...} (JSON)'),
  body: z.string().optional().describe('Raw body to answer with (with content_type); exclusive with message'),
  content_type: z.string().optional().describe('Content-Type of body'),
  echo: z.boolean().default(false).describe('Answer with the request as JSON (method, path, query, headers, TLS identity, credential claims)'),
  trigger: z.string().optional().describe('Only terminate when this header or query parameter is present'),
}).superRefine((c, ctx) => {
  if (c.message !== undefined && c.body !== undefined) ctx.addIssue({ code: 'custom', path: ['body'], message: 'message and body cannot both be set' })
  if (c.body !== undefined && c.content_type === undefined) ctx.addIssue({ code: 'custom', path: ['content_type'], message: 'content_type is required with body' })
})

export type RequestTerminationConfig = z.output<typeof schema>
