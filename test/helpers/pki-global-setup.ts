/**
 * vitest globalSetup: the test PKI is generated once per run (some 15 certificates, one RSA key) instead of once per
 * test file; createTestPki() copies it into each caller's own temp dir.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generatePki, SHARED_PKI_ENV, toJson } from './pki.js'

export default async function setupSharedPki (): Promise<() => void> {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-shared-pki-'))
  const file = join(dir, 'pki.json')
  writeFileSync(file, toJson(await generatePki()), { mode: 0o600 })
  process.env[SHARED_PKI_ENV] = file
  return function teardownSharedPki () { rmSync(dir, { recursive: true, force: true }) }
}
