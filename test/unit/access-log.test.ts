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
    log({ req_id: 'r-1', route: 'orders', method: 'GET', path, status: 200, bytes: 12, total_ms: 1.25, upstream_ms: Number.NaN, sub: undefined, cert_subject: 'CN=a\\,b,O="x"' })
    expect(lines).toHaveLength(1)
    expect(lines[0].endsWith('}\n')).toBe(true)
    const rec = JSON.parse(lines[0]) as Record<string, unknown>
    expect(rec).toEqual({ level: 'info', pid: process.pid, time: rec.time, msg: 'request', req_id: 'r-1', route: 'orders', method: 'GET', path, status: 200, bytes: 12, total_ms: 1.25, upstream_ms: null, cert_subject: 'CN=a\\,b,O="x"' })
    expect('sub' in rec).toBe(false)
    expect(new Date(rec.time as string).getTime()).toBeGreaterThan(Date.now() - 10_000)
  })

  it('writes the error code and its sub-reason as err and err_cause', () => {
    const lines: string[] = []
    const sink = new Writable({ write (c: Buffer, _e, cb) { lines.push(c.toString()); cb() } })
    const log = createAccessLog(createLogger({ destination: sink as never }))
    log({ req_id: 'r', route: 'x', method: 'GET', path: '/', status: 401, bytes: 0, total_ms: 1, err: 'CB_ERR_TOKEN_INVALID', err_cause: 'expired', reason: 'token expired (exp 1, leeway 0s)' })
    log({ req_id: 'r', route: 'x', method: 'GET', path: '/', status: 401, bytes: 0, total_ms: 1, err: 'CB_ERR_CERT_MISSING' })
    const [a, b] = lines.map(l => JSON.parse(l) as Record<string, unknown>)
    expect([a.err, a.err_cause, a.reason]).toEqual(['CB_ERR_TOKEN_INVALID', 'expired', 'token expired (exp 1, leeway 0s)'])
    expect(b.err).toBe('CB_ERR_CERT_MISSING')
    expect('err_cause' in b).toBe(false)
  })

  it('writes durations in milliseconds with three decimals', () => {
    const lines: string[] = []
    const sink = new Writable({ write (c: Buffer, _e, cb) { lines.push(c.toString()); cb() } })
    const log = createAccessLog(createLogger({ destination: sink as never }))
    const cases: Array<[number, string]> = [[0, '0.000'], [0.0004, '0.000'], [0.0126, '0.013'], [12.3456, '12.346'], [1234.5, '1234.500'], [0.1, '0.100'], [Infinity, 'null']]
    for (const [ms] of cases) log({ req_id: 'r', route: 'x', method: 'GET', path: '/', status: 200, bytes: 0, total_ms: ms, upstream_ms: ms })
    expect(lines.map(l => /"total_ms":([^,}]+)/.exec(l)?.[1])).toEqual(cases.map(c => c[1]))
    expect(lines.map(l => /"upstream_ms":([^,}]+)/.exec(l)?.[1])).toEqual(cases.map(c => c[1]))
    for (const l of lines) JSON.parse(l)
  })

  it('writes nothing when the level is above info', () => {
    const lines: string[] = []
    const sink = new Writable({ write (c: Buffer, _e, cb) { lines.push(c.toString()); cb() } })
    const log = createAccessLog(createLogger({ destination: sink as never, level: 'warn' }))
    log({ req_id: 'r-2', route: 'orders', method: 'GET', path: '/', status: 200, bytes: 0, total_ms: 1 })
    expect(lines).toHaveLength(0)
  })
})
