/**
 * Reads on a loaded Tally: the workload of the reads issue. One device with `--big` readings a
 * second apart (payload {"temp"}), and a fleet of `--fleet DEVICESxREADINGS` interleaved; then the
 * answers people ask for, each timed `--rounds` times (median), checked for the expected totals:
 * latest of a device, the 1h aggregate of the big device (count and payload.temp), a 1,000-reading
 * history page, the top 100 devices by cumulative count, and the whole big device streamed from
 * GET /devices/:id (with the server's peak RSS growth). Then single-reading write latency at a
 * steady rate, alone and while two clients run aggregates in a loop, and bytes on disk per reading.
 *
 * Each server named on the command line runs the whole workload in turn, on a fresh data dir:
 *
 *   node --import tsx bench/reads.ts [--big 1000000] [--fleet 1000x2000] [--rounds 5] \
 *     'base=node /tmp/base/dist/app/cli.js serve' 'new=node dist/app/cli.js serve'
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { eachLimited, peakRssBytes, sleep, startPingServer, type Server } from './proc.js';
import { hardware, median } from './report.js';

const { values: flags, positionals: specs } = parseArgs({
  options: {
    big: { type: 'string', default: '1000000' },
    fleet: { type: 'string', default: '1000x2000' },
    rounds: { type: 'string', default: '5' },
  },
  allowPositionals: true,
});
const BIG = Number(flags.big);
const [FLEET_DEVICES, FLEET_READINGS] = flags.fleet.split('x').map(Number) as [number, number];
const ROUNDS = Number(flags.rounds);
if (specs.length === 0) throw new Error("name at least one server: 'name=command ...'");

const BASE_MS = Date.UTC(2024, 0, 1);
const BATCH = 10_000;
const iso = (ms: number) => new Date(ms).toISOString();

async function postBatch(url: string, body: string): Promise<void> {
  for (;;) {
    const res = await fetch(`${url}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const text = await res.text();
    if (res.status === 200) return;
    if (res.status === 503) {
      await sleep(100);
      continue;
    }
    throw new Error(`load: ${res.status} ${text.slice(0, 200)}`);
  }
}

/** The big device, then the fleet interleaved (reading r of every device before reading r + 1). */
async function load(url: string): Promise<number> {
  const bodies: Array<() => string> = [];
  for (let start = 0; start < BIG; start += BATCH) {
    bodies.push(() =>
      JSON.stringify(
        Array.from({ length: Math.min(BATCH, BIG - start) }, (_, k) => {
          const i = start + k;
          return { device_id: 'big', ts: iso(BASE_MS + i * 1000), count: 1 + (i % 5), payload: { temp: 15 + (i % 100) / 10 } };
        }),
      ),
    );
  }
  const fleetTotal = FLEET_DEVICES * FLEET_READINGS;
  for (let start = 0; start < fleetTotal; start += BATCH) {
    bodies.push(() =>
      JSON.stringify(
        Array.from({ length: Math.min(BATCH, fleetTotal - start) }, (_, k) => {
          const i = start + k;
          const r = Math.floor(i / FLEET_DEVICES);
          return { device_id: `dev-${i % FLEET_DEVICES}`, ts: iso(BASE_MS + r * 60_000), count: 1 + (i % 3) };
        }),
      ),
    );
  }
  const started = performance.now();
  await eachLimited(bodies, 4, (body) => postBatch(url, body()));
  return (BIG + fleetTotal) / ((performance.now() - started) / 1000);
}

/** A GET, timed; a connection the busy machine did not accept in time is tried again (not timed). */
async function timed(url: string): Promise<{ ms: number; json: any }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await timedOnce(url);
    } catch (err) {
      if (attempt === 3 || (err as Error).message !== 'fetch failed') throw err;
      console.log(`(${url}: ${String((err as { cause?: unknown }).cause)}; again)`);
    }
  }
}

async function timedOnce(url: string): Promise<{ ms: number; json: any }> {
  const t0 = performance.now();
  const res = await fetch(url);
  const json = await res.json();
  if (!res.ok) throw new Error(`${url}: ${res.status} ${JSON.stringify(json).slice(0, 200)}`);
  return { ms: performance.now() - t0, json };
}

async function medianOf(url: string, check: (json: any) => void): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const { ms, json } = await timed(url);
    check(json);
    times.push(ms);
  }
  return median(times);
}

function expectEqual(what: string, got: unknown, want: unknown): void {
  if (got !== want) throw new Error(`check failed: ${what}: got ${String(got)}, expected ${String(want)}`);
}

/** Single-reading posts at `perSecond` for `seconds`; their latencies in ms. */
async function writeLatencies(url: string, perSecond: number, seconds: number, device: string): Promise<number[]> {
  const out: number[] = [];
  const sends: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; i < perSecond * seconds; i++) {
    const due = started + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    sends.push(
      (async () => {
        const t0 = performance.now();
        try {
          await postBatch(url, JSON.stringify([{ device_id: device, ts: iso(BASE_MS + i * 1000), count: 1 }]));
          out.push(performance.now() - t0);
        } catch {
          out.push(Infinity); // not answered at all (a server too busy to accept the connection in 10 s)
        }
      })(),
    );
  }
  await Promise.all(sends);
  return out;
}

const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
};

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

type Row = Record<string, string>;

async function run(name: string, command: string): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-reads-'));
  const [cmd, ...args] = command.split(' ');
  let server: Server | undefined;
  try {
    server = await startPingServer(name, cmd!, args, { TALLY_DATA_DIR: dir, TALLY_LOG_LEVEL: 'warn' });
    const url = server.url;
    const loadRate = await load(url);
    const big = await timed(`${url}/v1/devices/big`); // reads see everything acknowledged from here on
    expectEqual('big reading_count', big.json.reading_count, BIG);
    await sleep(2_000); // let the writer settle (compaction, checkpoint) before timing reads

    const row: Row = { server: name, 'load readings/s': Math.round(loadRate).toLocaleString('en-US') };
    row['latest ms'] = (await medianOf(`${url}/v1/devices/dev-7`, (j) => expectEqual('fleet readings', j.reading_count, FLEET_READINGS))).toFixed(2);
    const bucketsTotal = (j: any) => j.buckets.reduce((n: number, b: { count: number }) => n + b.count, 0);
    row['agg 1h count ms'] = (
      await medianOf(`${url}/v1/devices/big/aggregate?every=1h&fn=count,sum,min,max,avg`, (j) => expectEqual('aggregate count', bucketsTotal(j), BIG))
    ).toFixed(1);
    row['agg 1h temp ms'] = (
      await medianOf(`${url}/v1/devices/big/aggregate?every=1h&field=payload.temp&fn=count,avg`, (j) => expectEqual('aggregate temp', bucketsTotal(j), BIG))
    ).toFixed(1);
    row['history 1000 ms'] = (
      await medianOf(`${url}/v1/devices/big/readings?limit=1000&from=${iso(BASE_MS + (BIG / 2) * 1000)}`, (j) => expectEqual('page', j.items.length, 1000))
    ).toFixed(2);
    row['top 100 ms'] = (
      await medianOf(`${url}/v1/devices?sort=cumulative_count&order=desc&limit=100`, (j) => expectEqual('top', j.items[0].device_id, 'big'))
    ).toFixed(2);

    const rssBefore = peakRssBytes(server.proc.pid) ?? 0;
    const t0 = performance.now();
    const res = await fetch(`${url}/devices/big`);
    const bytes = (await res.arrayBuffer()).byteLength;
    row['GET /devices/big s'] = ((performance.now() - t0) / 1000).toFixed(2);
    row['its peak RSS growth MiB'] = (((peakRssBytes(server.proc.pid) ?? 0) - rssBefore) / 2 ** 20).toFixed(0);
    row['its MiB'] = (bytes / 2 ** 20).toFixed(1);

    const alone = await writeLatencies(url, 200, 5, 'lat-alone');
    let looping = true;
    const loops = [0, 1].map(async () => {
      while (looping) await timed(`${url}/v1/devices/big/aggregate?every=1h&fn=count,sum,min,max,avg`);
    });
    let during: number[];
    try {
      during = await writeLatencies(url, 200, 5, 'lat-during');
    } finally {
      looping = false;
      await Promise.allSettled(loops);
    }
    const latency = (values: number[]) => {
      const failed = values.filter((v) => v === Infinity).length;
      return `${pct(values, 0.5).toFixed(1)}/${pct(values, 0.99).toFixed(1)}${failed > 0 ? ` (${failed} failed)` : ''}`;
    };
    row['write p50/p99 ms alone'] = latency(alone);
    row['during aggregates'] = latency(during);

    await server.proc.stop();
    const total = BIG + FLEET_DEVICES * FLEET_READINGS + 2_000;
    row['bytes/reading'] = (dirBytes(dir) / total).toFixed(1);
    row['files'] = readdirSync(dir)
      .map((name) => `${name.replace('tally.db', '')||'db'} ${(statSync(join(dir, name)).size / 2 ** 20).toFixed(0)}M`)
      .join(' ');
    return row;
  } catch (err) {
    console.log(`${name} failed: ${(err as Error).message}`);
    if (server !== undefined) console.log(`[${name} output]\n${server.proc.output().slice(-3000)}`);
    throw err;
  } finally {
    await server?.proc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const hw = hardware();
console.log(`reads: ${BIG.toLocaleString('en-US')} readings of one device + ${FLEET_DEVICES}x${FLEET_READINGS} fleet; ${ROUNDS} rounds, medians`);
console.log(`machine: ${hw.cpu}, ${hw.cores} cores, ${hw.memoryGiB} GiB, node ${hw.node}`);
const rows: Row[] = [];
for (const spec of specs) {
  const eq = spec.indexOf('=');
  rows.push(await run(spec.slice(0, eq), spec.slice(eq + 1)));
}
const columns = Object.keys(rows[0]!);
for (const column of columns) console.log(`${column.padStart(26)}  ${rows.map((r) => (r[column] ?? '').padStart(14)).join('  ')}`);
