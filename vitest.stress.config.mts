// The fault and load suite (issue 5): `npm run test:stress`; STRESS_SCALE=ci for the bounded CI form.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/stress/**/*.test.ts'],
    // Files run one after another: each one measures timing, threads and descriptors,
    // and the machine may have only two cores.
    fileParallelism: false,
    pool: 'forks',
    testTimeout: 300_000,
    hookTimeout: 60_000,
  },
});
