import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // the test PKI, generated once per run (test/helpers/pki.ts)
    globalSetup: ['test/helpers/pki-global-setup.ts'],
    reporters: ['default'],
  },
})
