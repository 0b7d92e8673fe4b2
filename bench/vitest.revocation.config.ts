import { defineConfig } from 'vitest/config'

/** Issue 18's measurement (bench/revocation-handshakes.bench.ts), apart from `npm test`. */
export default defineConfig({
  test: {
    include: ['bench/revocation-handshakes.bench.ts'],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
})
