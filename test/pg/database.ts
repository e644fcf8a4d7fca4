import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, test } from 'vitest';

/**
 * PostgreSQL for tests. TALLY_TEST_PG_URL names an admin connection (e.g.
 * postgres://postgres@127.0.0.1:5432/test) used only to create and drop a database per store;
 * every store under test gets a database of its own, dropped afterwards.
 */
const ADMIN_URL = process.env.TALLY_TEST_PG_URL || undefined;
const IN_CI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';

export const SKIP_LINE = 'set TALLY_TEST_PG_URL to run the PostgreSQL tests';

/**
 * `describe`, when PostgreSQL tests can run. Without TALLY_TEST_PG_URL: one skipped line locally,
 * and a failure under CI, where the database is part of the job.
 */
export function describePg(name: string, body: () => void): void {
  if (ADMIN_URL !== undefined) describe(name, body);
  else if (IN_CI) {
    test(name, () => {
      throw new Error(`CI is set but TALLY_TEST_PG_URL is not: ${SKIP_LINE}`);
    });
  } else test.skip(SKIP_LINE, () => undefined);
}

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  /** Runs one statement on the test database (outside any store). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  /**
   * An outage: `times` rounds, `everyMs` apart, of terminating every other connection to the test
   * database. Often enough that some rounds find statements in flight, not only idle connections.
   */
  killConnections(times: number, everyMs: number): Promise<void>;
  drop(): Promise<void>;
}

async function admin<T>(run: (client: pg.Client) => Promise<T>, url = ADMIN_URL): Promise<T> {
  if (url === undefined) throw new Error(SKIP_LINE);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** A fresh, empty database on the test server. */
export async function createDatabase(): Promise<TestDatabase> {
  const name = `tally_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(ADMIN_URL!);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    name,
    query: (text, values) => admin(async (c) => (await c.query(text, values)).rows, url.href),
    killConnections: async (times, everyMs) => {
      for (let i = 0; i < times; i++) {
        await new Promise((resolve) => setTimeout(resolve, everyMs));
        await admin((c) => c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]));
      }
    },
    // FORCE: a test that failed half way may leave connections behind.
    drop: async () => {
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
