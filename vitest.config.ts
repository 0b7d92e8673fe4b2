import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // most files wait on sockets, processes and timers, not the CPU: vitest's default (CPUs - 1) ran them one at a
    // time on a 2-core machine. CERTBOUND_TEST_WORKERS=1 runs them serially again.
    maxWorkers: Number(process.env.CERTBOUND_TEST_WORKERS ?? 3),
    // the test PKI, generated once per run (test/helpers/pki.ts)
    globalSetup: ['test/helpers/pki-global-setup.ts'],
    reporters: ['default'],
  },
})
