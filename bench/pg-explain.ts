/**
 * The plans of the PostgreSQL store's queries on a populated database (2,000 devices x 500
 * readings = 1,000,000 readings, hourly, over four weekly partitions), as pasted into src/store/postgres/README.md.
 *
 *   TALLY_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test node --import tsx bench/pg-explain.ts
 *
 * Creates a database of its own and drops it at the end. EXPLAIN ANALYZE of the append runs
 * inside a transaction that is rolled back.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Reading } from '../src/domain/reading.js';
import { postgresConfig } from '../src/store/postgres/config.js';
import * as sql from '../src/store/postgres/sql.js';
import { PostgresStore } from '../src/store/postgres/store.js';
import type { DeviceListQuery } from '../src/store/types.js';

const ADMIN = process.env.TALLY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const T0 = Date.UTC(2024, 0, 1) * 1000;
/** One reading per device per hour: 500 readings span three weeks, so four weekly partitions. */
const STEP = 3600 * 1_000_000;

async function main(): Promise<void> {
  const name = `tally_explain_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  try {
    // Migrations, and the weekly partitions the readings below fall in (made as a store makes them).
    const store = await PostgresStore.open(postgresConfig(url.href));
    await store.appendBatch(Array.from({ length: 600 }, (_, r) => ({ deviceId: 'seed', tsUs: T0 + r * STEP, tsText: null, count: null, payload: null })));
    await store.deleteDevice('seed');
    await store.close();
    const db = new pg.Client({ connectionString: url.href });
    await db.connect();
    try {
      await populate(db);
      await explainAll(db);
    } finally {
      await db.end();
    }
  } finally {
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
  }
}

async function populate(db: pg.Client): Promise<void> {
  await db.query(`INSERT INTO readings (device_id, ts_us, ts_text, count, payload)
    SELECT 'dev-' || lpad(d::text, 5, '0'), ${T0} + r * ${STEP}, NULL, (d * r) % 100, '{"temp":' || ((d + r) % 40) || '}'
    FROM generate_series(1, 2000) d, generate_series(1, 500) r`);
  await db.query(`INSERT INTO devices (device_id, first_ts_us, latest_ts_us, latest_ts_text, latest_payload, reading_count, cumulative_count)
    SELECT device_id, min(ts_us), max(ts_us), NULL, (array_agg(payload ORDER BY ts_us DESC))[1], count(*), sum(count)
    FROM readings GROUP BY device_id ORDER BY device_id`);
  await db.query('VACUUM ANALYZE readings');
  await db.query('VACUUM ANALYZE devices');
}

async function explain(db: pg.Client, title: string, text: string, values: unknown[]): Promise<void> {
  const { rows } = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) ${text}`, values);
  process.stdout.write(`### ${title}\n\n\`\`\`\n${rows.map((r) => r['QUERY PLAN']).join('\n')}\n\`\`\`\n\n`);
}

async function explainAll(db: pg.Client): Promise<void> {
  // A fleet batch: 1,000 readings, 500 devices x 2 new timestamps, plus 10 duplicates of stored ones.
  const batch: Reading[] = [];
  for (let d = 1; d <= 500; d++) for (const r of [501, 502]) batch.push({ deviceId: `dev-${String(d).padStart(5, '0')}`, tsUs: T0 + r * STEP, tsText: null, count: 1, payload: '{"temp":1}' });
  for (let d = 1; d <= 10; d++) batch.push({ deviceId: `dev-${String(d).padStart(5, '0')}`, tsUs: T0 + 7 * STEP, tsText: null, count: 1, payload: null });
  await db.query('BEGIN');
  await explain(db, 'appendBatch (1,010 readings, 10 of them duplicates; rolled back)', sql.APPEND, sql.appendParams(batch).values);
  await db.query('ROLLBACK');

  await explain(db, 'getDevice', sql.GET_DEVICE, ['dev-01234']);
  const list = (title: string, query: DeviceListQuery, after?: readonly [number | string | null, number]) => {
    const q = sql.devicePageQuery(query, after);
    return explain(db, title, q.text, q.values);
  };
  await list('listDevices by device_id, first page', { sort: { by: 'deviceId' }, order: 'asc', limit: 100 });
  await list('listDevices by device_id, after a cursor', { sort: { by: 'deviceId' }, order: 'asc', limit: 100 }, ['dev-01000', 1000]);
  await list('listDevices by latest_ts desc, after a cursor', { sort: { by: 'latestTs' }, order: 'desc', limit: 100 }, [T0 + 500 * STEP, 1000]);
  await list('listDevices by reading_count, offset 200 (the Vital data pages)', { sort: { by: 'readingCount' }, order: 'asc', limit: 100, offset: 200 });
  await list('listDevices with a prefix', { sort: { by: 'deviceId' }, order: 'asc', limit: 100, prefix: 'dev-012' });
  await list('listDevices by payload.temp (no index: every summary is read, a top-N sort)', { sort: { by: 'payload', fields: ['temp'] }, order: 'desc', limit: 100 });
  const count = sql.deviceCountQuery('dev-012');
  await explain(db, 'listDevices withTotal: the count, with a prefix', count.text, count.values);

  await explain(db, 'deviceReadings, a range, ascending, limit 100', sql.historyQuery(true), ['dev-01234', T0 + 100 * STEP, T0 + 400 * STEP, 100]);
  await explain(db, 'deviceReadings, descending, after a cursor', sql.historyQuery(false), ['dev-01234', Number.MIN_SAFE_INTEGER, T0 + 250 * STEP, 100]);
  const records = (after?: [number, string], prefix?: string) => sql.recordsQuery(100, after, prefix);
  await explain(db, 'listRecords, first page', records().text, records().values);
  const next = records([T0 + 250 * STEP, 'dev-01000']);
  await explain(db, 'listRecords, after a cursor', next.text, next.values);
  const bound = records(undefined, 'dev-012');
  await explain(db, "listRecords of a device-bound key's devices (a prefix)", bound.text, bound.values);
  const agg = sql.aggregateQuery('dev-01234', { fromUs: T0, toUs: T0 + 500 * STEP, everyUs: 24 * STEP, field: { kind: 'payload', name: 'temp' } });
  await explain(db, 'aggregate, payload.temp in daily buckets', agg.text, agg.values);

  await db.query('BEGIN');
  await explain(db, 'deleteDevice (rolled back)', sql.DELETE_DEVICE, ['dev-01234']);
  await explain(db, 'pruneBefore, 2,000 at a time (rolled back)', sql.PRUNE, [T0 + 100 * STEP, 2000]);
  await db.query('ROLLBACK');
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
