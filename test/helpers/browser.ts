/**
 * A real headless browser: Debian's `chromium` (scripts/system-deps.sh installs it) driven by playwright-core,
 * which downloads nothing (no postinstall; the system binary is given as executablePath).
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'

/** Screenshots and other artifacts of browser tests (gitignored; CI keeps them). */
export const ARTIFACTS_DIR = join(import.meta.dirname, '..', '..', 'test-artifacts')

export function chromiumPath (): string {
  const fromEnv = process.env.CHROMIUM_PATH
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim()
  } catch {
    throw new Error('chromium is not installed: run `bash scripts/system-deps.sh` (Debian package "chromium")')
  }
}

export async function launchBrowser (): Promise<Browser> {
  // --no-sandbox: tests run as root in CI containers, where chromium's sandbox cannot start
  return await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
}

export function artifactPath (...parts: string[]): string {
  const p = join(ARTIFACTS_DIR, ...parts)
  mkdirSync(join(p, '..'), { recursive: true })
  return p
}
