#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled output (npm ci runs `prepare`, which builds it).
import { existsSync } from 'node:fs'
const cli = new URL('../dist/src/cli.js', import.meta.url)
if (!existsSync(cli)) {
  process.stderr.write('certbound: dist/ is missing; run `npm ci` (or `npm run build`) first\n')
  process.exit(1)
}
await import(cli.href)
