import { execFile } from 'node:child_process'

export interface CurlResult { status: number, headers: Record<string, string>, body: string, exitCode: number, stderr: string }

/**
 * Run the real curl binary (users run curl; so do the tests). Returns status, headers (last response,
 * lower-case names) and body. Never throws on HTTP or TLS failure: exitCode tells (35 = TLS handshake).
 */
export function curl (args: string[], opts: { timeoutMs?: number } = {}): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', String((opts.timeoutMs ?? 10_000) / 1000), '-D', '-', ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const exitCode = err === null ? 0 : (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1)
      // -D - writes every response head (incl. 100 Continue) before the body
      let rest = stdout
      let status = 0
      let headers: Record<string, string> = {}
      while (rest.startsWith('HTTP/')) {
        const end = rest.indexOf('\r\n\r\n')
        if (end < 0) break
        const head = rest.slice(0, end).split('\r\n')
        status = Number(head[0].split(' ')[1])
        headers = {}
        for (const line of head.slice(1)) {
          const c = line.indexOf(':')
          if (c > 0) headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim()
        }
        rest = rest.slice(end + 4)
      }
      resolve({ status, headers, body: rest, exitCode, stderr })
    })
  })
}
