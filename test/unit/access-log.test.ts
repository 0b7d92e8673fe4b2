import { describe, it, expect } from 'vitest'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/observability/logger.js'
import { createAccessLog } from '../../src/observability/access-log.js'

describe('access log writer', () => {
  it('writes one valid JSON line per request, escaping what JSON requires, skipping undefined fields', () => {
    const lines: string[] = []
    const sink = new Writable({ write (c: Buffer, _e, cb) { lines.push(c.toString()); cb() } })
    const log = createAccessLog(createLogger({ destination: sink as never }))
    const path = '/a"b\\c\n\u2028é'
    log({ msg: 'request', path, status: 200, total_ms: 1.25, bad: Number.NaN, skipped: undefined, ok: true, nested: { a: [1] } })
    expect(lines).toHaveLength(1)
    expect(lines[0].endsWith('}\n')).toBe(true)
    const rec = JSON.parse(lines[0]) as Record<string, unknown>
    expect(rec).toMatchObject({ level: 'info', msg: 'request', path, status: 200, total_ms: 1.25, bad: null, ok: true, nested: { a: [1] } })
    expect('skipped' in rec).toBe(false)
    expect(new Date(rec.time as string).getTime()).toBeGreaterThan(Date.now() - 10_000)
  })

  it('writes nothing when the level is above info', () => {
    const lines: string[] = []
    const sink = new Writable({ write (c: Buffer, _e, cb) { lines.push(c.toString()); cb() } })
    const log = createAccessLog(createLogger({ destination: sink as never, level: 'warn' }))
    log({ msg: 'request' })
    expect(lines).toHaveLength(0)
  })
})
