/**
 * The reads workload of `npm run bench:peers -- --phases reads`: the reads issue's data
 * (bench/reads-workload.ts) loaded into Tally and into InfluxDB, both kept running, then each
 * question asked of both in turn (A, B, A, B, ...: a slow minute of a shared machine lands on both),
 * every answer checked against the other system's: the latest reading of a device, the 1h aggregate
 * of the 1 M-reading device (of `count`, and of the payload's temp), a 1,000-reading history page,
 * the top 100 devices by cumulative count; then single-reading write latency alone and during two
 * loops of aggregates; and bytes on disk per reading once the load has settled.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../proc.js';
import {
  BASE_MS,
  dirBytes,
  expectEqual,
  iso,
  latencyText,
  loadAll,
  medianOf,
  postUntilTaken,
  tallyBody,
  timed,
  writeLatencies,
  type ReadsData,
  type WorkloadReading,
} from '../reads-workload.js';
import { INFLUX_DB, type System, type Server } from './systems.js';

export interface ReadsOptions extends ReadsData {
  readonly rounds: number;
  readonly dataRoot: string;
  /** Seconds left idle after the load before bytes are counted (Tally settles its file 10 s after its last write). */
  readonly settleSeconds: number;
}

export type ReadsRow = Record<string, string>;

const MEASUREMENT = 'reads';

function lines(readings: WorkloadReading[]): string {
  return readings
    .map((r) => `${MEASUREMENT},device=${r.device} count=${r.count}i${r.temp === undefined ? '' : `,temp=${r.temp}`} ${r.ms / 1000}`)
    .join('\n');
}

/** How one system is asked each question; every answer is normalised to compare with the other's. */
interface Asker {
  readonly name: string;
  readonly server: Server;
  readonly dir: string;
  load(): Promise<number>;
  write(device: string, i: number): Promise<void>;
  latest(device: string): Promise<{ ms: number; json: any }>;
  /** Buckets as [start ms, count, sum, min, max] (count) or [start ms, count, avg] (temp). */
  aggregate(field: 'count' | 'temp'): Promise<{ ms: number; json: any }>;
  history(fromMs: number): Promise<{ ms: number; json: any }>;
  top(): Promise<{ ms: number; json: any }>;
  /** What a timed answer means, comparable across systems. */
  normal: {
    latest(json: any): number;
    aggregate(json: any, field: 'count' | 'temp'): number[][];
    history(json: any): number[][];
    top(json: any): number[];
  };
  /** Bytes on disk: [data, write-ahead log]. */
  bytes(): [number, number];
}

function tallyAsker(server: Server, dir: string, data: ReadsData): Asker {
  const url = server.url;
  const post = (body: string) => postUntilTaken(`${url}/v1/readings`, body, 'application/json', 200);
  const agg = (field: 'count' | 'temp') =>
    timed(`${url}/v1/devices/big/aggregate?every=1h&${field === 'count' ? 'fn=count,sum,min,max,avg' : 'field=payload.temp&fn=count,avg'}`);
  return {
    name: 'Tally',
    server,
    dir,
    load: () => loadAll(data, (readings) => post(tallyBody(readings))),
    write: (device, i) => post(JSON.stringify([{ device_id: device, ts: iso(BASE_MS + i * 1000), count: 1 }])),
    latest: (device) => timed(`${url}/v1/devices/${device}`),
    aggregate: agg,
    history: (fromMs) => timed(`${url}/v1/devices/big/readings?order=asc&limit=1000&from=${iso(fromMs)}`),
    top: () => timed(`${url}/v1/devices?sort=cumulative_count&order=desc&limit=100`),
    normal: {
      latest: (j) => Date.parse(j.latest_ts),
      aggregate: (j, field) =>
        j.buckets.map((b: any) => (field === 'count' ? [Date.parse(b.start), b.count, b.sum, b.min, b.max] : [Date.parse(b.start), b.count, b.avg])),
      history: (j) => j.items.map((r: any) => [Date.parse(r.ts), r.count]),
      top: (j) => j.items.map((d: any) => d.cumulative_count),
    },
    bytes: () => [dirBytes(dir), 0],
  };
}

function influxAsker(server: Server, dir: string, data: ReadsData): Asker {
  const url = server.url;
  const query = (q: string) =>
    timed(`${url}/query?db=${INFLUX_DB}&epoch=ms`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ q }).toString(),
    }).then((r) => {
      const error = r.json.error ?? r.json.results?.find((x: any) => x.error !== undefined)?.error;
      if (error !== undefined) throw new Error(`InfluxDB query ${q}: ${error}`);
      return r;
    });
  const values = (j: any): any[][] => j.results[0]?.series?.[0]?.values ?? [];
  const end = `'${iso(BASE_MS + data.big * 1000)}'`;
  const post = (body: string) => postUntilTaken(`${url}/write?db=${INFLUX_DB}&precision=s`, body, 'text/plain; charset=utf-8', 204);
  return {
    name: 'InfluxDB',
    server,
    dir,
    load: () => loadAll(data, (readings) => post(lines(readings))),
    write: (device, i) => post(`${MEASUREMENT},device=${device} count=1i ${(BASE_MS + i * 1000) / 1000}`),
    latest: (device) => query(`SELECT last("count") FROM ${MEASUREMENT} WHERE device = '${device}'`),
    aggregate: (field) =>
      query(
        `SELECT ${field === 'count' ? 'count("count"), sum("count"), min("count"), max("count"), mean("count")' : 'count("temp"), mean("temp")'} FROM ${MEASUREMENT}
         WHERE device = 'big' AND time >= '${iso(BASE_MS)}' AND time < ${end} GROUP BY time(1h) fill(none)`,
      ),
    history: (fromMs) => query(`SELECT "count" FROM ${MEASUREMENT} WHERE device = 'big' AND time >= '${iso(fromMs)}' ORDER BY time ASC LIMIT 1000`),
    top: () => query(`SELECT top("s", "device", 100) FROM (SELECT sum("count") AS s FROM ${MEASUREMENT} GROUP BY "device")`),
    normal: {
      latest: (j) => values(j)[0]![0],
      aggregate: (j, field) => values(j).map((v) => (field === 'count' ? v.slice(0, 5) : v.slice(0, 3))),
      history: (j) => values(j).map((v) => [v[0], v[1]]),
      top: (j) => values(j).map((v) => v[1]).sort((a: number, b: number) => b - a),
    },
    bytes: () => [dirBytes(join(dir, 'data')), dirBytes(join(dir, 'wal'))],
  };
}

/** Whether two normalised answers agree (floats to 1e-9 relative: a mean computed in another order). */
function same(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  return a === b;
}

/**
 * Asks both systems the same question `rounds` times in turn; each answer must agree with the
 * other system's first; returns each system's median time.
 */
async function both(
  what: string,
  askers: readonly Asker[],
  rounds: number,
  ask: (a: Asker) => Promise<{ ms: number; json: any }>,
  normal: (a: Asker, json: any) => unknown,
): Promise<number[]> {
  const answers: unknown[] = [];
  const times: number[][] = askers.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, a] of askers.entries()) {
      times[i]!.push(
        await medianOf(1, () => ask(a), (json) => {
          const answer = normal(a, json);
          answers[i] ??= answer;
          if (!same(answer, answers[0])) {
            throw new Error(`check failed: ${what}: ${a.name} answered ${JSON.stringify(answer).slice(0, 300)}, ${askers[0]!.name} ${JSON.stringify(answers[0]).slice(0, 300)}`);
          }
        }),
      );
    }
  }
  return times.map((t) => [...t].sort((x, y) => x - y)[(t.length - 1) >> 1]!);
}

/** Runs the reads workload on Tally and InfluxDB (both must be available); returns one row per system. */
export async function readsWorkload(tally: System, influx: System, o: ReadsOptions): Promise<ReadsRow[]> {
  const askers: Asker[] = [];
  const dirs: string[] = [];
  try {
    for (const [system, make] of [
      [tally, tallyAsker],
      [influx, influxAsker],
    ] as const) {
      const dir = mkdtempSync(join(o.dataRoot, `tally-peers-${system.id}-reads-`));
      dirs.push(dir);
      const server = await system.start(dir);
      await system.prepare(server);
      askers.push(make(server, dir, o));
    }
    const rows: ReadsRow[] = askers.map((a) => ({ system: a.name }));
    const total = o.big + o.fleetDevices * o.fleetReadings;
    // One system loads at a time, so neither's load is slowed by the other's.
    for (const [i, a] of askers.entries()) {
      const rate = await a.load();
      rows[i]!['load readings/s'] = Math.round(rate).toLocaleString('en-US');
      console.log(`  ${a.name}: loaded ${total.toLocaleString('en-US')} readings at ${rows[i]!['load readings/s']}/s`);
    }
    // Tally's reads see everything acknowledged; then both settle before bytes are counted.
    await sleep(o.settleSeconds * 1000);
    for (const [i, a] of askers.entries()) {
      const [data, wal] = a.bytes();
      rows[i]!['bytes/reading (data)'] = (data / total).toFixed(2);
      rows[i]!['bytes/reading (+WAL)'] = ((data + wal) / total).toFixed(2);
    }

    const put = (column: string, values: number[], digits: number) => values.forEach((v, i) => (rows[i]![column] = v.toFixed(digits)));
    put('latest ms', await both('latest', askers, o.rounds, (a) => a.latest('dev-7'), (a, j) => a.normal.latest(j)), 2);
    put('agg 1h count ms', await both('aggregate of count', askers, o.rounds, (a) => a.aggregate('count'), (a, j) => a.normal.aggregate(j, 'count')), 1);
    put('agg 1h temp ms', await both('aggregate of temp', askers, o.rounds, (a) => a.aggregate('temp'), (a, j) => a.normal.aggregate(j, 'temp')), 1);
    put('history 1000 ms', await both('history page', askers, o.rounds, (a) => a.history(BASE_MS + (o.big / 2) * 1000), (a, j) => a.normal.history(j)), 2);
    put('top 100 ms', await both('top 100', askers, o.rounds, (a) => a.top(), (a, j) => a.normal.top(j)), 2);
    // A sanity check on the checks: the aggregate covers every reading of the big device.
    const agg = askers[0]!.normal.aggregate((await askers[0]!.aggregate('count')).json, 'count');
    expectEqual('aggregate total', agg.reduce((n, b) => n + b[1]!, 0), o.big);

    for (const [i, a] of askers.entries()) {
      const alone = await writeLatencies(200, 5, (k) => a.write('lat-alone', k));
      let looping = true;
      const loops = [0, 1].map(async () => {
        while (looping) await a.aggregate('count');
      });
      let during: number[];
      try {
        during = await writeLatencies(200, 5, (k) => a.write('lat-during', k));
      } finally {
        looping = false;
        await Promise.allSettled(loops);
      }
      rows[i]!['write p50/p99 ms alone'] = latencyText(alone);
      rows[i]!['during aggregates'] = latencyText(during);
    }
    return rows;
  } finally {
    for (const a of askers) await a.server.proc.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** The rows as a table, a column per system, and Tally's aggregate speed-up. */
export function readsTable(rows: readonly ReadsRow[]): string {
  const columns = Object.keys(rows[0]!);
  const out = columns.map((c) => `${c.padStart(24)}  ${rows.map((r) => (r[c] ?? '').padStart(14)).join('  ')}`);
  const [t, i] = rows;
  if (t !== undefined && i !== undefined) {
    out.push(`${'agg 1h count speed-up'.padStart(24)}  ${(Number(i['agg 1h count ms']) / Number(t['agg 1h count ms'])).toFixed(1).padStart(14)}x`);
  }
  return out.join('\n');
}
