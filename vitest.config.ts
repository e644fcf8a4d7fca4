import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two test files at a time, not vitest's default of one per core but one (a single file on a
    // 2-core machine): most files wait on servers, sockets and fsyncs, so the suite took 320 s
    // instead of 480 s here, and the tests' time bounds are loose enough for a busy machine.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
