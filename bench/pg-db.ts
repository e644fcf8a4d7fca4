/**
 * Fresh PostgreSQL databases for a bench run: created on the server that `--store` names, used,
 * then dropped, so every run starts from empty tables and never touches anyone else's database.
 */
import pg from 'pg';

export interface FreshDatabase {
  /** postgres://... of the new database (the --store URL with its database replaced). */
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

let made = 0;

/**
 * Creates `tally_bench_<pid>_<n>[_label]` on the server of `serverUrl` (whose own database is only
 * where CREATE/DROP DATABASE are issued from). Query parameters of the URL (Tally's pool_size...) are kept.
 */
export async function freshDatabase(serverUrl: string, label = ''): Promise<FreshDatabase> {
  const name = `tally_bench_${process.pid}_${++made}${label === '' ? '' : `_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`}`;
  await admin(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    url: url.href,
    name,
    drop: () => (dropped ??= admin(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)),
  };
}

/** Runs `fn` on a fresh database, dropped afterwards whatever happens. */
export async function withFreshDatabase<T>(serverUrl: string, label: string, fn: (db: FreshDatabase) => Promise<T>): Promise<T> {
  const db = await freshDatabase(serverUrl, label);
  try {
    return await fn(db);
  } finally {
    await db.drop();
  }
}

/** One statement on the server's own database (the URL without Tally's query parameters). */
async function admin(serverUrl: string, statement: string): Promise<void> {
  const url = new URL(serverUrl);
  url.search = '';
  const client = new pg.Client({ connectionString: url.href });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
