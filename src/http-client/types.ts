export interface HttpTlsOptions {
  /** Verify the server certificate (default true). */
  rejectUnauthorized?: boolean
  /** Client certificate and key (PEM) for mutual TLS to the server. */
  cert?: string | Buffer
  key?: string | Buffer
}

export interface HttpRequestOptions {
  method?: string
  headers?: Record<string, string>
  body?: string | Buffer
  /** Whole-exchange timeout in ms (default 10000). */
  timeoutMs?: number
  /** Responses larger than this are refused (default 1 MiB). */
  maxResponseBytes?: number
  tls?: HttpTlsOptions
  /** Send through this HTTP forward proxy (`http://host:port`, CONNECT tunnel); default direct. */
  proxy?: string
}

export interface HttpResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: Buffer
}

/** Outbound HTTP for plugins (IdPs). Trusts the system CAs plus gateway.trusted_certificates. */
export interface HttpClient {
  request(url: string, opts?: HttpRequestOptions): Promise<HttpResponse>
  /** A WHATWG fetch bound to the same trust store, for libraries that take a fetch (jose's remote JWKS). */
  fetch(input: string | URL, init?: RequestInit & { tls?: HttpTlsOptions }): Promise<Response>
  close(): Promise<void>
}
