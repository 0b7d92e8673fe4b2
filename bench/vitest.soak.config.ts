import { defineConfig } from 'vitest/config'

/** `npm run soak`: the faults-under-load run (bench/faults.soak.ts), apart from `npm test`. */
const seconds = Number(process.env.SOAK_SECONDS ?? 180)

export default defineConfig({
  test: {
    include: ['bench/faults.soak.ts'],
    testTimeout: (Math.min(Math.max(seconds, 10), 3600) + 180) * 1000,
    hookTimeout: 240_000,
    pool: 'forks',
    reporters: ['default'],
  },
})
