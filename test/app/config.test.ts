import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/app/config.js';

const CLI = fileURLToPath(new URL('../../src/app/cli.ts', import.meta.url));

function configError(env: Record<string, string>, argv: string[] = []): ConfigError {
  try {
    loadConfig(env, argv);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)} ${argv.join(' ')}`);
}

/** The SQLite settings of a configuration that must name a SQLite store. */
function sqliteOf(config: ReturnType<typeof loadConfig>) {
  if (config.store.backend !== 'sqlite') throw new Error(`expected a sqlite store, got ${config.store.backend}`);
  return config.store.sqlite;
}

describe('loadConfig', () => {
  test('defaults', () => {
    const config = loadConfig({});
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 8080,
      store: { backend: 'sqlite', sqlite: { file: 'data/tally.db', synchronous: 'FULL', cacheMiB: 64, compactRows: 100_000 } },
      bodyLimit: 4 * 1024 * 1024,
      maxReadings: 10_000,
      queueLimit: 100_000,
      maxBatchReadings: 20_000,
      logLevel: 'info',
      lineProtocol: { deviceTag: 'device', countField: 'count' },
      requestLog: false,
      auth: 'auto',
      rates: {},
      http: { headersTimeoutMs: 10_000, requestTimeoutMs: 120_000, keepAliveTimeoutMs: 72_000, maxHeaderBytes: 16_384, maxConnections: 1024 },
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(sqliteOf(config))).toBe(true);
  });

  test('environment variables, sizes with units, retention and the admin token', () => {
    const config = loadConfig({
      TALLY_HOST: '0.0.0.0',
      TALLY_PORT: '9000',
      TALLY_DATA_DIR: '/var/lib/tally',
      TALLY_BODY_LIMIT: '512KiB',
      TALLY_MAX_READINGS: '500',
      TALLY_QUEUE_LIMIT: '5000',
      TALLY_MAX_BATCH: '1000',
      TALLY_SYNCHRONOUS: 'normal',
      TALLY_LOG_LEVEL: 'warn',
      TALLY_RETENTION: '30d',
      TALLY_ADMIN_TOKEN: 'a-long-enough-secret',
    });
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 9000,
      store: { backend: 'sqlite', sqlite: { file: '/var/lib/tally/tally.db', synchronous: 'NORMAL' } },
      bodyLimit: 512 * 1024,
      maxReadings: 500,
      queueLimit: 5000,
      maxBatchReadings: 1000,
      logLevel: 'warn',
      retention: { us: 30 * 86_400_000_000, label: '30d' },
      adminToken: 'a-long-enough-secret',
    });
  });

  test('TALLY_REQUEST_LOG is on or off, and names itself when it is neither', () => {
    expect(loadConfig({ TALLY_REQUEST_LOG: 'on' }).requestLog).toBe(true);
    expect(loadConfig({ TALLY_REQUEST_LOG: 'OFF' }).requestLog).toBe(false);
    expect(loadConfig({}, ['--request-log', 'on']).requestLog).toBe(true);
    expect(() => loadConfig({ TALLY_REQUEST_LOG: 'yes' })).toThrow(/TALLY_REQUEST_LOG must be one of on, off/);
  });

  test('TALLY_AUDIT_EVERY and TALLY_BACKUP_*: durations, a directory and a count, each named when wrong', () => {
    expect(loadConfig({}).audit).toBeUndefined();
    expect(loadConfig({}).backups).toBeUndefined();
    expect(loadConfig({ TALLY_AUDIT_EVERY: '24h' }).audit).toEqual({ everyMs: 86_400_000, label: '24h' });
    expect(loadConfig({ TALLY_STORE: 'sqlite:/data/t.db', TALLY_BACKUP_EVERY: '90m', TALLY_BACKUP_DIR: '/mnt/b', TALLY_BACKUP_KEEP: '3' }).backups).toEqual({
      everyMs: 5_400_000,
      label: '90m',
      dir: '/mnt/b',
      keep: 3,
    });
    expect(() => loadConfig({ TALLY_AUDIT_EVERY: 'daily' })).toThrow(/TALLY_AUDIT_EVERY must be a duration such as 30s/);
    expect(() => loadConfig({ TALLY_AUDIT_EVERY: '30d' })).toThrow(/TALLY_AUDIT_EVERY must be at most 24d, got 30d/);
    expect(() => loadConfig({ TALLY_BACKUP_EVERY: '6h', TALLY_BACKUP_KEEP: '0' })).toThrow(/TALLY_BACKUP_KEEP must be a whole number between 1 and 10000, got "0"/);
    expect(() => loadConfig({ TALLY_BACKUP_EVERY: '6h', TALLY_BACKUP_DIR: ' ' })).toThrow(/TALLY_BACKUP_DIR must not be empty/);
    expect(() => loadConfig({ TALLY_STORE: 'postgres://u@h/db', TALLY_BACKUP_EVERY: '6h' })).toThrow(/TALLY_BACKUP_EVERY backs up SQLite stores; for PostgreSQL use pg_dump/);
    expect(loadConfig({}, ['--audit-every', '1h']).audit?.everyMs).toBe(3_600_000);
  });

  test('a flag wins over its variable', () => {
    expect(loadConfig({ TALLY_PORT: '9000' }, ['--port', '9100']).port).toBe(9100);
    expect(sqliteOf(loadConfig({}, ['--data-dir=/tmp/x', '--synchronous', 'NORMAL']))).toMatchObject({ file: '/tmp/x/tally.db', synchronous: 'NORMAL' });
    expect(sqliteOf(loadConfig({ TALLY_STORE: 'sqlite:/a.db' }, ['--store', 'sqlite:/b.db'])).file).toBe('/b.db');
  });

  test('TALLY_STORE names the store: sqlite:<path>, and wins over TALLY_DATA_DIR', () => {
    expect(loadConfig({ TALLY_STORE: 'sqlite:./elsewhere/tally.db', TALLY_DATA_DIR: '/ignored' }).store).toEqual({
      backend: 'sqlite',
      sqlite: { file: './elsewhere/tally.db', synchronous: 'FULL', cacheMiB: 64, compactRows: 100_000 },
    });
    expect(sqliteOf(loadConfig({ TALLY_STORE: 'sqlite:///var/lib/t.db' })).file).toBe('/var/lib/t.db');
    expect(sqliteOf(loadConfig({ TALLY_STORE: 'sqlite://rel/t.db' })).file).toBe('rel/t.db');
    expect(sqliteOf(loadConfig({ TALLY_STORE: 'SQLite:t.db', TALLY_SYNCHRONOUS: 'normal' }))).toMatchObject({ file: 't.db', synchronous: 'NORMAL' });
  });

  test('TALLY_STORE=postgres://... selects PostgreSQL; Tally\'s own URL parameters are taken out, the password kept out of logs', () => {
    const store = loadConfig({ TALLY_STORE: 'postgres://tally:s3cret@db.example:5433/tally?pool_size=4&statement_timeout_ms=2000&sslmode=require' }).store;
    expect(store).toEqual({
      backend: 'postgres',
      postgres: {
        connectionString: 'postgres://tally:s3cret@db.example:5433/tally?sslmode=require',
        display: 'postgres://tally@db.example:5433/tally?sslmode=require',
        poolSize: 4,
        connectionTimeoutMillis: 5_000,
        statementTimeoutMillis: 2_000,
        queryTimeoutMillis: 35_000,
        idleTimeoutMillis: 30_000,
      },
    });
    expect(Object.isFrozen(store.backend === 'postgres' && store.postgres)).toBe(true);
    expect(loadConfig({ TALLY_STORE: 'postgresql://localhost/t' }).store.backend).toBe('postgres');
  });

  test.each([
    ['mysql://localhost/tally', /TALLY_STORE.*unknown scheme "mysql"/],
    ['./data/tally.db', /TALLY_STORE must name a store as sqlite:<path>/],
    ['sqlite:', /TALLY_STORE: the SQLite store needs a file path/],
    ['sqlite::memory:', /TALLY_STORE: the SQLite store needs a file path/],
    ['postgres://localhost', /TALLY_STORE: the PostgreSQL URL must name a database/],
    ['postgres://localhost/tally?pool_size=0', /TALLY_STORE: poolSize must be between 1 and 1000/],
    ['postgresql://localhost/tally?statement_timeout_ms=soon', /TALLY_STORE: statement_timeout_ms must be a whole number/],
  ])('TALLY_STORE=%s is refused with a message naming it', (value, message) => {
    expect(configError({ TALLY_STORE: value }).message).toMatch(message);
  });

  test.each([
    [{ TALLY_PORT: 'eighty' }, 'TALLY_PORT'],
    [{ TALLY_PORT: '70000' }, 'TALLY_PORT'],
    [{ TALLY_PORT: '-1' }, 'TALLY_PORT'],
    [{ TALLY_BODY_LIMIT: '4 parsecs' }, 'TALLY_BODY_LIMIT'],
    [{ TALLY_BODY_LIMIT: '10' }, 'TALLY_BODY_LIMIT'],
    [{ TALLY_MAX_READINGS: '0' }, 'TALLY_MAX_READINGS'],
    [{ TALLY_QUEUE_LIMIT: '1.5' }, 'TALLY_QUEUE_LIMIT'],
    [{ TALLY_MAX_BATCH: 'many' }, 'TALLY_MAX_BATCH'],
    [{ TALLY_SYNCHRONOUS: 'OFF' }, 'TALLY_SYNCHRONOUS'],
    [{ TALLY_LOG_LEVEL: 'loud' }, 'TALLY_LOG_LEVEL'],
    [{ TALLY_RETENTION: '30 days' }, 'TALLY_RETENTION'],
    [{ TALLY_ADMIN_TOKEN: 'short' }, 'TALLY_ADMIN_TOKEN'],
    [{ TALLY_QUEUE_LIMIT: '100', TALLY_MAX_READINGS: '1000' }, 'TALLY_QUEUE_LIMIT'],
  ])('%o is refused with a message naming %s', (env, name) => {
    expect(configError(env).message).toContain(name);
  });

  test('a bad flag is named as the flag', () => {
    expect(configError({}, ['--port', 'x']).message).toContain('--port');
    expect(configError({}, ['--no-such-flag']).message).toMatch(/no-such-flag/);
  });
});

describe('the CLI', () => {
  test('an invalid variable stops the start: exit code 2 and a message naming it', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'serve'], {
      env: { PATH: process.env.PATH ?? '', TALLY_PORT: 'eighty' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/invalid configuration: TALLY_PORT/);
  });

  test('an unknown TALLY_STORE scheme stops the start: exit code 2 and a message naming TALLY_STORE', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'serve'], {
      env: { PATH: process.env.PATH ?? '', TALLY_STORE: 'mongodb://localhost/tally' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/invalid configuration: TALLY_STORE .*unknown scheme "mongodb"/);
  });

  test('help lists every variable', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'help'], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(0);
    for (const name of ['TALLY_HOST', 'TALLY_PORT', 'TALLY_STORE', 'TALLY_DATA_DIR', 'TALLY_BODY_LIMIT', 'TALLY_MAX_READINGS', 'TALLY_QUEUE_LIMIT', 'TALLY_RETENTION', 'TALLY_AUDIT_EVERY', 'TALLY_BACKUP_EVERY', 'TALLY_BACKUP_DIR', 'TALLY_BACKUP_KEEP']) {
      expect(run.stdout).toContain(name);
    }
  });
});
