import { defineConfig } from 'vitest/config'

/**
 * Files that measure latency against their own idle baseline: they run after every other file, alone, so the
 * files running beside them (3 at a time, below) do not become their noise.
 */
const TIMING = ['test/hostile/secret-flood.test.ts']

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // most files wait on sockets, processes and timers, not the CPU: vitest's default (CPUs - 1) ran them one at a
    // time on a 2-core machine. CERTBOUND_TEST_WORKERS=1 runs them serially again.
    maxWorkers: Number(process.env.CERTBOUND_TEST_WORKERS ?? 3),
    // the test PKI, generated once per run (test/helpers/pki.ts)
    globalSetup: ['test/helpers/pki-global-setup.ts'],
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'suite', include: ['test/**/*.test.ts'], exclude: TIMING, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'timing', include: TIMING, sequence: { groupOrder: 1 } } },
    ],
  },
})
