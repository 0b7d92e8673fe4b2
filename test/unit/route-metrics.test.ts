import { describe, expect, it } from 'vitest'
import { AggregatorRegistry } from 'prom-client'
import { GatewayMetrics } from '../../src/observability/metrics.js'

function line (text: string, prefix: string): number {
  const l = text.split('\n').find(x => x.startsWith(prefix + ' '))
  if (l === undefined) throw new Error(`no sample ${prefix} in\n${text}`)
  return Number(l.slice(prefix.length + 1))
}

describe('per-route request metrics', () => {
  it('exposes counts by status and a cumulative latency histogram in the Prometheus text format', async () => {
    const m = new GatewayMetrics()
    m.request('orders', 200, 0.0004) // first bucket (le 0.0005)
    m.request('orders', 200, 0.0005) // a bound is inclusive: still le 0.0005
    m.request('orders', 401, 0.003) // le 0.005
    m.request('orders', 200, 42) // past the last bound: +Inf only
    m.request('(none)', 404, 0.0001)
    const text = await m.registry.metrics()
    expect(text).toContain('# TYPE certbound_http_requests_total counter')
    expect(text).toContain('# HELP certbound_http_requests_total Requests by route and response status')
    expect(text).toContain('# TYPE certbound_http_request_duration_seconds histogram')
    expect(line(text, 'certbound_http_requests_total{route="orders",status="200"}')).toBe(3)
    expect(line(text, 'certbound_http_requests_total{route="orders",status="401"}')).toBe(1)
    expect(line(text, 'certbound_http_requests_total{route="(none)",status="404"}')).toBe(1)
    const b = (le: string): number => line(text, `certbound_http_request_duration_seconds_bucket{route="orders",le="${le}"}`)
    expect(b('0.0005')).toBe(2)
    expect(b('0.001')).toBe(2)
    expect(b('0.0025')).toBe(2)
    expect(b('0.005')).toBe(3)
    expect(b('10')).toBe(3)
    expect(b('+Inf')).toBe(4)
    expect(line(text, 'certbound_http_request_duration_seconds_count{route="orders"}')).toBe(4)
    expect(line(text, 'certbound_http_request_duration_seconds_sum{route="orders"}')).toBeCloseTo(42.0039, 6)
  })

  it('sums across node:cluster workers like prom-client metrics do', async () => {
    const a = new GatewayMetrics()
    const b = new GatewayMetrics()
    a.request('orders', 200, 0.002)
    b.request('orders', 200, 0.002)
    b.request('orders', 500, 0.2)
    const merged = AggregatorRegistry.aggregate([await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()])
    const text = await merged.metrics()
    expect(line(text, 'certbound_http_requests_total{route="orders",status="200"}')).toBe(2)
    expect(line(text, 'certbound_http_requests_total{route="orders",status="500"}')).toBe(1)
    expect(line(text, 'certbound_http_request_duration_seconds_bucket{route="orders",le="0.0025"}')).toBe(2)
    expect(line(text, 'certbound_http_request_duration_seconds_bucket{route="orders",le="+Inf"}')).toBe(3)
    expect(line(text, 'certbound_http_request_duration_seconds_count{route="orders"}')).toBe(3)
  })
})
