import { defineConfig } from 'vitest/config';

/**
 * Two passes in one run (README "Tests and CI"): `sqlite` is the whole suite as it always ran; `postgres`
 * runs the server-level tests again with TEST_DATABASE=postgres, so every server and harness that would use
 * memory or SQLite `:memory:` gets a fresh PostgreSQL schema (test/harness.ts) and takes the shared path.
 * One run means one closing `vitest:` line that counts both passes, and a failure in either fails it.
 * `vitest run --project sqlite` (or `postgres`) runs one pass only.
 */

/** Without a PostgreSQL to run on, the second pass is left out, and the run says so once. */
const postgresUrl = process.env['TEST_POSTGRES_URL'];
if (!postgresUrl) process.stdout.write('PostgreSQL pass skipped: TEST_POSTGRES_URL is not set (CI sets it; see README, "Tests and CI").\n');

/**
 * Left out of the PostgreSQL pass, each for a reason:
 * - pure units that never touch a store (backoff, the timeline, lint, config, the wire format, client types):
 *   they cannot behave differently;
 * - suites that already run on PostgreSQL themselves whenever TEST_POSTGRES_URL is set (the storage
 *   contract suite, claims, signals, followed events, the three-process cluster);
 * - what only SQLite has: files restarted on, their lock, kill -9 on a file, the runtime entries on a file
 *   (their SQLite cases stay in the first pass).
 */
const NOT_ON_POSTGRES = [
  'test/core/backoff.test.ts',
  // Pure, or a browser's CORS checks: the database changes nothing they test.
  'test/cron-oracle.test.ts',
  'test/cors-browser.test.ts',
  // A browser's view of the dashboard: the database changes nothing it tests.
  'test/dashboard-browser.test.ts',
  'test/core/timeline.test.ts',
  'test/lint.test.ts',
  'test/config.test.ts',
  'test/wire.test.ts',
  'test/client-types.test.ts',
  // Builds and packs the client package and type-checks a consumer: no database in it.
  'test/client-package.test.ts',
  // Token verification against a loopback identity provider: the database changes nothing it tests.
  'test/idp.test.ts',
  'test/storage.test.ts',
  'test/claims.test.ts',
  'test/signals.test.ts',
  'test/cluster-events.test.ts',
  'test/cluster/**',
  'test/migrations.test.ts',
  'test/regression/**',
  'test/runtime.test.ts',
  'test/secrets.test.ts',
  'test/deno.test.ts',
];

const shared = {
  testTimeout: 30_000,
  hookTimeout: 30_000,
};

export default defineConfig({
  test: {
    // Tests start real servers on free ports; two workers match the machine's two cores.
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      // TEST_DATABASE is set in both, so a value left in the shell never moves the first pass off SQLite.
      { test: { ...shared, name: 'sqlite', include: ['test/**/*.test.ts'], env: { TEST_DATABASE: 'sqlite' }, sequence: { groupOrder: 0 } } },
      ...(postgresUrl
        ? [{
          test: {
            ...shared,
            name: 'postgres',
            include: ['test/**/*.test.ts'],
            exclude: NOT_ON_POSTGRES,
            env: { TEST_DATABASE: 'postgres' },
            // After the SQLite pass, not beside it: the two cores are already busy with one pass.
            sequence: { groupOrder: 1 },
          },
        }]
        : []),
    ],
  },
});
