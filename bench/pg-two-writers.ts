/**
 * The issue's soak: two PostgreSQL stores (two nodes) on one database write the same 1,000-device
 * batches in opposite device orders, concurrently, for a while. Every reading is sent twice and must
 * be stored once; no error may surface; the totals must be exact.
 *
 *   TALLY_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test node --import tsx bench/pg-two-writers.ts [--seconds 30] [--lanes 2]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { Reading } from '../src/domain/reading.js';
import { postgresConfig } from '../src/store/postgres/config.js';
import { PostgresStore } from '../src/store/postgres/store.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '30' }, lanes: { type: 'string', default: '2' } } });
const SECONDS = Number(values.seconds);
const LANES = Number(values.lanes);
const ADMIN = process.env.TALLY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DEVICES = Array.from({ length: 1000 }, (_, i) => `dev-${String(i).padStart(4, '0')}`);
const T0 = Date.UTC(2024, 0, 1) * 1000;

const batchOf = (k: number): Reading[] =>
  DEVICES.map((d, i) => ({ deviceId: d, tsUs: T0 + k * 1_000_000, tsText: null, count: (i % 7) + 1, payload: `{"k":${k}}` }));

async function main(): Promise<void> {
  const name = `tally_soak_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  const stores = await Promise.all([0, 1].map(() => PostgresStore.open(postgresConfig(url.href, { poolSize: LANES + 1 }))));
  try {
    const claimed = [new Set<number>(), new Set<number>()];
    const stored = [0, 0];
    const errors: unknown[] = [];
    const deadline = Date.now() + SECONDS * 1000;
    const started = process.hrtime.bigint();
    const lane = async (node: 0 | 1) => {
      while (Date.now() < deadline) {
        // Node 0 takes the lowest batch it has not written; node 1 likewise: both write every batch.
        let b = 0;
        while (claimed[node]!.has(b)) b++;
        claimed[node]!.add(b);
        const batch = batchOf(b);
        if (node === 1) batch.reverse();
        try {
          const flags = await stores[node]!.appendBatch(batch);
          for (const f of flags) stored[node]! += f;
        } catch (err) {
          errors.push(err);
        }
      }
    };
    const lanes: Array<Promise<void>> = [];
    for (let i = 0; i < LANES; i++) lanes.push(lane(0), lane(1));
    await Promise.all(lanes);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const both = [...claimed[0]!].filter((b) => claimed[1]!.has(b)).length;
    const db = new pg.Client({ connectionString: url.href });
    await db.connect();
    const { rows } = await db.query<{ n: string; c: string; s: string }>(
      'SELECT (SELECT count(*) FROM readings)::text AS n, (SELECT sum(reading_count) FROM devices)::text AS c, (SELECT sum(cumulative_count) FROM devices)::text AS s',
    );
    await db.end();
    const distinct = new Set([...claimed[0]!, ...claimed[1]!]).size;
    const perBatchSum = DEVICES.reduce((sum, _d, i) => sum + (i % 7) + 1, 0);
    const expected = { n: String(distinct * DEVICES.length), c: String(distinct * DEVICES.length), s: String(distinct * perBatchSum) };
    const exact = rows[0]!.n === expected.n && rows[0]!.c === expected.c && rows[0]!.s === expected.s && stored[0]! + stored[1]! === distinct * DEVICES.length;
    process.stdout.write(
      `${seconds.toFixed(1)} s, ${LANES} lanes per node: ${distinct} batches of ${DEVICES.length} (${both} written by both nodes), ` +
        `${claimed[0]!.size + claimed[1]!.size} appends, stored ${stored[0]} + ${stored[1]} = ${stored[0]! + stored[1]!} readings ` +
        `(${Math.round((stored[0]! + stored[1]!) / seconds)} stored/s, ${Math.round(((claimed[0]!.size + claimed[1]!.size) * DEVICES.length) / seconds)} sent/s), ` +
        `errors ${errors.length}, totals ${exact ? 'exact' : `WRONG ${JSON.stringify(rows[0])} vs ${JSON.stringify(expected)}`}\n`,
    );
    if (errors.length > 0 || !exact) process.exitCode = 1;
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
