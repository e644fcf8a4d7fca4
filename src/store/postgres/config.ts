import { ConfigError } from '../../domain/errors.js';

/**
 * Options of the PostgreSQL store, parsed once from TALLY_STORE=postgres://user@host:port/db and
 * frozen. Tally's own settings ride in the URL's query (`?pool_size=20&statement_timeout_ms=5000`)
 * and are taken out of it; everything else in the URL goes to node-postgres unchanged.
 */
export interface PostgresStoreConfig {
  /** The URL node-postgres connects with, Tally's own parameters removed. May hold a password. */
  readonly connectionString: string;
  /** The URL without its password, for logs. */
  readonly display: string;
  /** Connections in the pool; writes may use all but one, so a read always finds one. */
  readonly poolSize: number;
  /** How long to wait for a connection (new, or free in the pool) before giving up; node-postgres waits forever by default. */
  readonly connectionTimeoutMillis: number;
  /** Server side: PostgreSQL cancels a statement running longer (statement_timeout). */
  readonly statementTimeoutMillis: number;
  /** Client side: a query with no answer this long fails, e.g. when the server vanished without a reset. */
  readonly queryTimeoutMillis: number;
  /** An idle connection is closed after this long. */
  readonly idleTimeoutMillis: number;
}

export const POSTGRES_DEFAULTS = {
  poolSize: 10,
  connectionTimeoutMillis: 5_000,
  statementTimeoutMillis: 30_000,
  queryTimeoutMillis: 35_000,
  idleTimeoutMillis: 30_000,
} as const;

type Tunable = keyof typeof POSTGRES_DEFAULTS;

/** URL query parameters that set Tally's options, and the option each sets. */
const PARAMS: Record<string, Tunable> = {
  pool_size: 'poolSize',
  connect_timeout_ms: 'connectionTimeoutMillis',
  statement_timeout_ms: 'statementTimeoutMillis',
  query_timeout_ms: 'queryTimeoutMillis',
  idle_timeout_ms: 'idleTimeoutMillis',
};

const LIMITS: Record<Tunable, readonly [number, number]> = {
  poolSize: [1, 1000],
  connectionTimeoutMillis: [1, 3_600_000],
  statementTimeoutMillis: [1, 86_400_000],
  queryTimeoutMillis: [1, 86_400_000],
  idleTimeoutMillis: [1, 86_400_000],
};

/** A complete, checked and frozen configuration from a postgres:// (or postgresql://) URL. */
export function postgresConfig(location: string, overrides: Partial<Record<Tunable, number>> = {}): PostgresStoreConfig {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new ConfigError('the PostgreSQL store needs a URL such as postgres://user@host:5432/tally');
  }
  if (url.pathname.length <= 1) throw new ConfigError('the PostgreSQL URL must name a database, e.g. postgres://user@host:5432/tally');
  const options: Record<Tunable, number> = { ...POSTGRES_DEFAULTS, ...overrides };
  for (const [param, key] of Object.entries(PARAMS)) {
    const raw = url.searchParams.get(param);
    if (raw === null) continue;
    url.searchParams.delete(param);
    if (!/^\d+$/.test(raw)) throw new ConfigError(`${param} must be a whole number, got ${JSON.stringify(raw)}`);
    options[key] = Number(raw);
  }
  for (const [key, [min, max]] of Object.entries(LIMITS) as Array<[Tunable, readonly [number, number]]>) {
    const value = options[key];
    if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(`${key} must be between ${min} and ${max}, got ${value}`);
  }
  const display = new URL(url.href);
  display.password = '';
  return Object.freeze({ connectionString: url.href, display: display.href, ...options });
}
