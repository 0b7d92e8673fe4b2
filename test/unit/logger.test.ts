import { describe, it, expect, beforeAll } from 'vitest'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT, ensureDist } from '../helpers/process.js'

/** Run a script against dist/'s logger writing to stdout (a pipe), and collect what reaches the pipe. */
function run (body: string, opts: { readDelayMs?: number, untilLine?: string } = {}): Promise<{ lines: string[], code: number | null }> {
  const logger = pathToFileURL(join(ROOT, 'dist/src/observability/logger.js')).href
  const script = `import { createLogger } from ${JSON.stringify(logger)}\nconst log = createLogger()\n${body}`
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error('logger script did not finish in 20 s')) }, 20_000)
    let out = ''
    p.stdout.setEncoding('utf8') // a pipe chunk may end inside a multi-byte character
    // a slow reader: the pipe fills and the writer meets EAGAIN
    if (opts.readDelayMs !== undefined) { p.stdout.pause(); setTimeout(() => p.stdout.resume(), opts.readDelayMs) }
    p.stdout.on('data', (c: string) => {
      out += c
      if (opts.untilLine !== undefined && out.includes(opts.untilLine)) p.kill('SIGTERM')
    })
    p.on('close', (code) => { clearTimeout(timer); resolve({ lines: out.split('\n').filter(l => l !== ''), code }) })
  })
}

function numbers (lines: string[]): number[] {
  return lines.map(l => (JSON.parse(l) as { i: number }).i)
}

describe('stdout logger (lines gathered into blocks)', () => {
  beforeAll(async () => { await ensureDist() }, 180_000)

  it('writes every line, in order, when the process ends by itself; multi-byte text survives block boundaries', async () => {
    const { lines } = await run('for (let i = 0; i < 5000; i++) log.info({ i, s: "é€😀".repeat(i % 7) }, "line")')
    expect(numbers(lines)).toEqual(Array.from({ length: 5000 }, (_, i) => i))
    expect(lines.map(l => (JSON.parse(l) as { s: string }).s)).toEqual(Array.from({ length: 5000 }, (_, i) => 'é€😀'.repeat(i % 7)))
  })

  it('writes every line when the process calls process.exit() with lines still buffered, past a slow reader', async () => {
    const { lines, code } = await run('for (let i = 0; i < 20000; i++) log.info({ i, pad: "x".repeat(100) }, "line")\nprocess.exit(3)', { readDelayMs: 300 })
    expect(code).toBe(3)
    expect(numbers(lines)).toEqual(Array.from({ length: 20000 }, (_, i) => i))
  })

  it('does not hold a lone line back while the process keeps running', async () => {
    // the process would live for 60 s: the line must arrive on its own (the flush interval), then the test stops it
    const { lines } = await run('log.info({ i: 7 }, "lone")\nsetTimeout(() => {}, 60_000)', { untilLine: '"lone"' })
    expect(numbers(lines)).toEqual([7])
  })
})
