import type { Registry } from 'prom-client'

/** One sample as prom-client's registries expect it from a metric's get(). */
interface Sample { labels: Record<string, string | number>, value: number, metricName?: string }

interface RouteStats {
  readonly byStatus: Map<number, number>
  /** Per bucket (not cumulative), plus one for +Inf. */
  readonly buckets: Float64Array
  sum: number
  count: number
}

const REQUESTS = 'certbound_http_requests_total'
const DURATION = 'certbound_http_request_duration_seconds'

function register (registry: Registry, name: string, help: string, type: 'counter' | 'histogram', values: () => Sample[]): void {
  const metric = { name, help, type, aggregator: 'sum' as const }
  registry.registerMetric({ ...metric, get: () => Promise.resolve({ ...metric, values: values() }) } as unknown as Parameters<Registry['registerMetric']>[0])
}

/**
 * certbound_http_requests_total{route,status} and certbound_http_request_duration_seconds{route}: counted in plain
 * numbers on the request path (a map lookup and an array increment) and turned into Prometheus samples only when
 * scraped. prom-client's own Counter and Histogram validate and hash the label set on every call, ~3 µs a request.
 * Registered as custom metrics (prom-client registries take any object with a name and get()), so the text format,
 * the JSON form and node:cluster aggregation (aggregator: sum) are prom-client's.
 */
export class RouteRequestMetrics {
  private readonly routes = new Map<string, RouteStats>()

  constructor (registry: Registry, private readonly bounds: readonly number[]) {
    register(registry, REQUESTS, 'Requests by route and response status', 'counter', () => this.counterSamples())
    register(registry, DURATION, 'Total request latency by route', 'histogram', () => this.histogramSamples())
  }

  record (route: string, status: number, seconds: number): void {
    let r = this.routes.get(route)
    if (r === undefined) {
      r = { byStatus: new Map(), buckets: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 }
      this.routes.set(route, r)
    }
    r.byStatus.set(status, (r.byStatus.get(status) ?? 0) + 1)
    const b = this.bounds
    let i = 0
    while (i < b.length && seconds > b[i]) i++
    r.buckets[i]++
    r.sum += seconds
    r.count++
  }

  private counterSamples (): Sample[] {
    const out: Sample[] = []
    for (const [route, r] of this.routes) for (const [status, n] of r.byStatus) out.push({ labels: { route, status: String(status) }, value: n })
    return out
  }

  private histogramSamples (): Sample[] {
    const out: Sample[] = []
    for (const [route, r] of this.routes) {
      let acc = 0
      for (let i = 0; i < this.bounds.length; i++) {
        acc += r.buckets[i]
        out.push({ labels: { route, le: this.bounds[i] }, value: acc, metricName: `${DURATION}_bucket` })
      }
      out.push({ labels: { route, le: '+Inf' }, value: r.count, metricName: `${DURATION}_bucket` })
      out.push({ labels: { route }, value: r.sum, metricName: `${DURATION}_sum` })
      out.push({ labels: { route }, value: r.count, metricName: `${DURATION}_count` })
    }
    return out
  }
}
