/**
 * What a started gateway loads (issue 20, memory): the DER codecs behind CRL files and online revocation checks
 * (@peculiar/x509, @peculiar/asn1-*, ~10 MB of RSS) and the Redis client load on first use, not at start. The demo
 * gateway (mtls-auth, openid-connect, the built-in AS, no CRL, memory store) is started with a module hook that
 * names every module it loads. The control: `--init-certs` in an empty directory writes the dev PKI with
 * @peculiar/x509, so the hook does see those modules when they load.
 */
import { describe, it, expect, beforeAll } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureDist, freePort, ROOT, waitFor } from '../helpers/process.js'

beforeAll(async () => { await ensureDist() }, 200_000)

const HOOK = `import { register } from 'node:module'
register('data:text/javascript,' + encodeURIComponent(\`export async function load (url, ctx, next) {
  if (/@peculiar|node_modules\\\\/(redis|@redis)\\\\//.test(url)) process.stderr.write('LOADED ' + url + '\\\\n')
  return next(url, ctx)
}\`))
`

/** Start the demo gateway in `dir` (its certificates made beforehand, or by --init-certs), stop it, return stderr. */
async function loadedBy (dir: string): Promise<string[]> {
  const port = await freePort()
  const admin = await freePort()
  writeFileSync(join(dir, 'hook.mjs'), HOOK)
  writeFileSync(join(dir, 'gateway.yml'), readFileSync(join(ROOT, 'gateway.yml'), 'utf8').replaceAll('8443', String(port)).replaceAll('8001', String(admin)))
  const child = spawn(process.execPath, ['--import', join(dir, 'hook.mjs'), join(ROOT, 'bin/certbound.js'), 'start', '-c', join(dir, 'gateway.yml'), '--init-certs'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout!.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr!.on('data', (c: Buffer) => { err += c.toString() })
  const gone = new Promise(r => child.once('exit', r))
  try {
    await waitFor('the start line', () => out.includes('"certbound started"') ? true : undefined, 60_000)
  } finally {
    child.kill('SIGTERM')
    await gone
  }
  return err.split('\n').filter(l => l.startsWith('LOADED ')).map(l => l.slice(7))
}

describe('modules a started gateway loads', () => {
  it('the demo gateway starts without the DER codecs or the Redis client; the control, --init-certs writing the dev PKI, loads @peculiar/x509', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certbound-lazy-'))
    try {
      const loaded = await loadedBy(dir)
      expect(loaded.some(u => u.includes('@peculiar/x509'))).toBe(true)
      // the same directory again: the certificates exist, nothing writes them, and nothing loads the codecs
      const again = await loadedBy(dir)
      expect(again, again.join('\n')).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
