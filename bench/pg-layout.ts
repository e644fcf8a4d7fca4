/**
 * A bench-only prototype of a storage layout for PostgreSQL (issue 15's closing question): what
 * would let N nodes on one PostgreSQL store faster than one SQLite node? Measures, on fresh
 * databases of the server `--store` names, the same readings written two ways:
 *
 * - **row**: a row per reading, Tally's production statement (sql.APPEND: unnest, DISTINCT ON,
 *   ON CONFLICT DO NOTHING RETURNING, summaries from what was inserted);
 * - **chunk**: a row per device per batch holding its readings as two arrays packed in a bytea
 *   (timestamps as int8, counts as int4), with the device's summary, under per-device ownership:
 *   a node claims a device once (a row of `owners`, INSERT ... ON CONFLICT DO NOTHING, outside the
 *   timed runs here), and is then its only writer, so duplicates are found in memory (here: readings
 *   not after the device's latest are dropped; a real node would also look up out-of-order ones)
 *   and the statement needs neither ON CONFLICT per reading nor RETURNING.
 *
 * Each in two arrival patterns of the main bench: **batch** (a body is 1,000 readings of one device)
 * and **fleet** (a body is 10 readings of each of 1,000 devices, as the NDJSON scenario).
 * Nothing of Tally's schema or store changes; the chunk schema lives only in this file.
 *
 *   node --import tsx bench/pg-layout.ts [--store postgres://postgres@127.0.0.1:5432/postgres] [--lanes 4] [--seconds 8] [--rounds 3]
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { Reading } from '../src/domain/reading.js';
import { withClient } from '../src/store/postgres/client.js';
import { migrate } from '../src/store/postgres/migrations.js';
import { Partitions } from '../src/store/postgres/partitions.js';
import * as sql from '../src/store/postgres/sql.js';
import { cpuSeconds } from './proc.js';
import { openAll } from './pg-ceiling.js';
import { withFreshDatabase } from './pg-db.js';
import { machine, median, printMachine } from './report.js';
import { BASE_MS, makeDevices } from './workload.js';

const { values: flags } = parseArgs({
  options: {
    store: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    lanes: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    'fleet-per-device': { type: 'string', default: '10' },
  },
});
const LANES = Number(flags.lanes);
const SECONDS = Number(flags.seconds);
const ROUNDS = Number(flags.rounds);
const FLEET_PER_DEVICE = Number(flags['fleet-per-device']);

const CHUNK_SCHEMA = `
  CREATE TABLE owners (device_id text COLLATE "C" PRIMARY KEY, node integer NOT NULL);
  -- One row per device per batch: first/last timestamp, how many, and the readings packed.
  CREATE TABLE chunks (
    device_id   text COLLATE "C" NOT NULL,
    first_ts_us bigint NOT NULL,
    last_ts_us  bigint NOT NULL,
    n           integer NOT NULL,
    total       bigint NOT NULL,
    data        bytea NOT NULL,
    PRIMARY KEY (device_id, first_ts_us)
  );
  -- Stored as is: pglz over every 12 KB chunk cost more database CPU than the rest of the insert.
  ALTER TABLE chunks ALTER data SET STORAGE EXTERNAL;
  CREATE TABLE chunk_devices (
    device_id text COLLATE "C" PRIMARY KEY,
    first_ts_us bigint NOT NULL, latest_ts_us bigint NOT NULL, reading_count bigint NOT NULL, cumulative_count bigint NOT NULL
  );`;

/** One statement: the batch's chunks, and each device's summary (the writer owns its devices: no conflicts to resolve per reading). */
const CHUNK_APPEND = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::integer[], $5::bigint[], $6::bytea[])
    AS t(device_id, first_ts_us, last_ts_us, n, total, data)
), ins AS (
  INSERT INTO chunks SELECT device_id COLLATE "C", first_ts_us, last_ts_us, n, total, data FROM input ORDER BY 1, 2
)
INSERT INTO chunk_devices AS d SELECT device_id COLLATE "C", first_ts_us, last_ts_us, n, total FROM input ORDER BY 1
ON CONFLICT (device_id) DO UPDATE SET
  first_ts_us = least(d.first_ts_us, excluded.first_ts_us), latest_ts_us = greatest(d.latest_ts_us, excluded.latest_ts_us),
  reading_count = d.reading_count + excluded.reading_count, cumulative_count = d.cumulative_count + excluded.cumulative_count`;

/** What the owning node keeps per device: the latest timestamp written (in-order arrivals need nothing else). */
type Latest = Map<string, number>;

/** The batch as one chunk per device: readings not after the device's latest are duplicates, dropped. */
function chunkParams(readings: readonly Reading[], latest: Latest): { values: unknown[]; rows: number; readings: number } {
  const byDevice = new Map<string, Reading[]>();
  for (const r of readings) {
    if (r.tsUs <= (latest.get(r.deviceId) ?? -Infinity)) continue;
    let list = byDevice.get(r.deviceId);
    if (list === undefined) byDevice.set(r.deviceId, (list = []));
    list.push(r);
  }
  const cols: [string[], number[], number[], number[], number[], Buffer[]] = [[], [], [], [], [], []];
  let kept = 0;
  for (const [device, list] of byDevice) {
    list.sort((a, b) => a.tsUs - b.tsUs);
    const data = Buffer.allocUnsafe(list.length * 12);
    let total = 0;
    for (let k = 0; k < list.length; k++) {
      data.writeBigInt64LE(BigInt(list[k]!.tsUs), k * 8);
      data.writeInt32LE(list[k]!.count ?? 0, list.length * 8 + k * 4);
      total += list[k]!.count ?? 0;
    }
    cols[0].push(device);
    cols[1].push(list[0]!.tsUs);
    cols[2].push(list.at(-1)!.tsUs);
    cols[3].push(list.length);
    cols[4].push(total);
    cols[5].push(data);
    latest.set(device, list.at(-1)!.tsUs);
    kept += list.length;
  }
  return { values: cols, rows: cols[0].length, readings: kept };
}

/** An arrival pattern: the readings of body i, as the main bench's bodies hold them (count 1 + second mod 5, ISO text). */
interface Pattern {
  readonly name: string;
  body(i: number): Reading[];
}

const reading = (deviceId: string, second: number): Reading => {
  const ms = BASE_MS + second * 1000;
  return { deviceId, tsUs: ms * 1000, tsText: new Date(ms).toISOString(), count: 1 + (second % 5), payload: null };
};

/** Body i: 1,000 readings of device i mod D, its round floor(i / D) (makeWorkload's batch bodies). */
const batchPattern = (devices: readonly string[]): Pattern => ({
  name: 'batch',
  body: (i) => {
    const round = Math.floor(i / devices.length);
    return Array.from({ length: 1_000 }, (_, k) => reading(devices[i % devices.length]!, round * 1_000 + k));
  },
});

/** Body i: the seconds pi .. pi+p-1 of every device (makeNdjsonWorkload's bodies, p = 10 there). */
const fleetPattern = (devices: readonly string[], p: number): Pattern => ({
  name: `fleet${p}`,
  body: (i) => {
    const out: Reading[] = [];
    for (let k = 0; k < p; k++) for (const d of devices) out.push(reading(d, i * p + k));
    return out;
  },
});

interface Figures {
  readonly layout: string;
  readonly pattern: string;
  readonly rowsPerS: number;
  readonly readingsPerS: number;
  readonly statementsPerS: number;
  /** CPU µs of the PostgreSQL backends serving the lanes per reading stored (WAL writer, checkpointer not included). */
  readonly dbCpuUsPerReading: number;
}

/** `LANES` loops of one body per statement for SECONDS; `write` answers the rows and readings it stored. */
async function timed(
  layout: string,
  workload: Pattern,
  start: { next: number },
  backends: readonly number[],
  write: (readings: Reading[]) => Promise<{ rows: number; readings: number }>,
): Promise<Figures> {
  const dbCpu = () => backends.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
  const cpu0 = dbCpu();
  let rows = 0;
  let readings = 0;
  let statements = 0;
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: LANES }, async () => {
      while (performance.now() < deadline) {
        const done = await write(workload.body(start.next++));
        rows += done.rows;
        readings += done.readings;
        statements++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  return {
    layout,
    pattern: workload.name,
    rowsPerS: rows / s,
    readingsPerS: readings / s,
    statementsPerS: statements / s,
    dbCpuUsPerReading: ((dbCpu() - cpu0) * 1e6) / Math.max(1, readings),
  };
}

async function main(): Promise<void> {
  printMachine(machine());
  console.log(`${LANES} statements in flight, ${SECONDS} s per run, ${ROUNDS} rounds of row/chunk in turn on fresh databases; medians`);
  const devices = makeDevices(1_000);
  const patterns = [batchPattern(devices), fleetPattern(devices, FLEET_PER_DEVICE)];
  const results: Figures[] = [];
  for (const workload of patterns) {
    await withFreshDatabase(flags.store, 'row', (rowDb) =>
      withFreshDatabase(flags.store, 'chunk', async (chunkDb) => {
        const rowPool = new pg.Pool({ connectionString: rowDb.url, max: LANES, idleTimeoutMillis: 0 });
        const chunkPool = new pg.Pool({ connectionString: chunkDb.url, max: LANES, idleTimeoutMillis: 0 });
        try {
          rowPool.on('error', () => undefined);
          chunkPool.on('error', () => undefined);
          await withClient(rowPool, migrate);
          await chunkPool.query(CHUNK_SCHEMA);
          // Ownership, claimed once per device before the timed runs: this node (1) owns every device.
          await chunkPool.query('INSERT INTO owners SELECT unnest($1::text[]), 1 ON CONFLICT DO NOTHING', [devices]);
          const rowBackends = await openAll(rowPool, LANES);
          const chunkBackends = await openAll(chunkPool, LANES);
          const partitions = new Partitions(rowPool);
          const latest: Latest = new Map();
          const rowNext = { next: 0 };
          const chunkNext = { next: 0 };
          const row = async (readings: Reading[]) => {
            const { values, ts } = sql.appendParams(readings);
            await partitions.ensure(ts);
            const { rows } = await rowPool.query(sql.APPEND, values);
            return { rows: rows.length, readings: rows.length };
          };
          const chunk = async (readings: Reading[]) => {
            const p = chunkParams(readings, latest);
            if (p.rows > 0) await chunkPool.query(CHUNK_APPEND, p.values);
            return p;
          };
          for (let r = 0; r < ROUNDS; r++) {
            const a = await timed('row', workload, rowNext, rowBackends, row);
            const b = await timed('chunk', workload, chunkNext, chunkBackends, chunk);
            console.log(
              `${workload.name} round ${r + 1}: row ${Math.round(a.rowsPerS)} rows/s = ${Math.round(a.readingsPerS)} readings/s (${a.dbCpuUsPerReading.toFixed(1)} µs db CPU each); ` +
                `chunk ${Math.round(b.rowsPerS)} rows/s = ${Math.round(b.readingsPerS)} readings/s (${b.dbCpuUsPerReading.toFixed(2)} µs); ${(b.readingsPerS / a.readingsPerS).toFixed(1)}x`,
            );
            results.push(a, b);
          }
          const size = async (pool: pg.Pool, tables: string) =>
            Number((await pool.query<{ b: string }>(`SELECT (${tables.split(',').map((t) => `pg_total_relation_size('${t}')`).join('+')})::text AS b`)).rows[0]!.b);
          const rowParts = (await rowPool.query<{ t: string }>(`SELECT c.relname AS t FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid`)).rows.map((x) => x.t);
          const rowReadings = Number((await rowPool.query<{ n: string }>('SELECT count(*)::text AS n FROM readings')).rows[0]!.n);
          const chunkReadings = Number((await chunkPool.query<{ n: string }>('SELECT coalesce(sum(n), 0)::text AS n FROM chunks')).rows[0]!.n);
          const rowBytes = await size(rowPool, [...rowParts, 'devices'].join(','));
          const chunkBytes = await size(chunkPool, 'chunks,chunk_devices,owners');
          console.log(
            `${workload.name} on disk: row ${(rowBytes / rowReadings).toFixed(1)} bytes/reading (${rowReadings} readings), ` +
              `chunk ${(chunkBytes / chunkReadings).toFixed(1)} bytes/reading (${chunkReadings} readings)`,
          );
        } finally {
          await rowPool.end();
          await chunkPool.end();
        }
      }),
    );
  }
  console.log('\nmedians');
  for (const workload of patterns) {
    for (const layout of ['row', 'chunk']) {
      const list = results.filter((f) => f.layout === layout && f.pattern === workload.name);
      console.log(
        `${workload.name.padEnd(6)} ${layout.padEnd(6)} ${Math.round(median(list.map((f) => f.rowsPerS))).toLocaleString('en-US').padStart(9)} rows/s ` +
          `${Math.round(median(list.map((f) => f.readingsPerS))).toLocaleString('en-US').padStart(11)} readings/s ` +
          `${median(list.map((f) => f.statementsPerS)).toFixed(1).padStart(7)} statements/s ` +
          `${median(list.map((f) => f.dbCpuUsPerReading)).toFixed(2).padStart(7)} µs db CPU/reading`,
      );
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
