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
import { peakRssBytes, sleep, startPingServer, type Server } from './proc.js';
import { hardware } from './report.js';
import { BASE_MS, dirBytes, expectEqual, iso, latencyText, loadAll, medianOf, postUntilTaken, tallyBody, timed, writeLatencies } from './reads-workload.js';

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

const data = { big: BIG, fleetDevices: FLEET_DEVICES, fleetReadings: FLEET_READINGS };
const get = (url: string) => timed(url);
const medianGet = (url: string, check: (json: any) => void) => medianOf(ROUNDS, () => get(url), check);
const postBatch = (url: string, body: string) => postUntilTaken(`${url}/v1/readings`, body, 'application/json', 200);
const load = (url: string) => loadAll(data, (readings) => postBatch(url, tallyBody(readings)));

type Row = Record<string, string>;

async function run(name: string, command: string): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-reads-'));
  const [cmd, ...args] = command.split(' ');
  let server: Server | undefined;
  try {
    server = await startPingServer(name, cmd!, args, { TALLY_DATA_DIR: dir, TALLY_LOG_LEVEL: 'warn' });
    const url = server.url;
    const loadRate = await load(url);
    const big = await get(`${url}/v1/devices/big`); // reads see everything acknowledged from here on
    expectEqual('big reading_count', big.json.reading_count, BIG);
    await sleep(2_000); // let the writer settle (compaction, checkpoint) before timing reads

    const row: Row = { server: name, 'load readings/s': Math.round(loadRate).toLocaleString('en-US') };
    row['latest ms'] = (await medianGet(`${url}/v1/devices/dev-7`, (j) => expectEqual('fleet readings', j.reading_count, FLEET_READINGS))).toFixed(2);
    const bucketsTotal = (j: any) => j.buckets.reduce((n: number, b: { count: number }) => n + b.count, 0);
    row['agg 1h count ms'] = (
      await medianGet(`${url}/v1/devices/big/aggregate?every=1h&fn=count,sum,min,max,avg`, (j) => expectEqual('aggregate count', bucketsTotal(j), BIG))
    ).toFixed(1);
    row['agg 1h temp ms'] = (
      await medianGet(`${url}/v1/devices/big/aggregate?every=1h&field=payload.temp&fn=count,avg`, (j) => expectEqual('aggregate temp', bucketsTotal(j), BIG))
    ).toFixed(1);
    row['history 1000 ms'] = (
      await medianGet(`${url}/v1/devices/big/readings?limit=1000&from=${iso(BASE_MS + (BIG / 2) * 1000)}`, (j) => expectEqual('page', j.items.length, 1000))
    ).toFixed(2);
    row['top 100 ms'] = (
      await medianGet(`${url}/v1/devices?sort=cumulative_count&order=desc&limit=100`, (j) => expectEqual('top', j.items[0].device_id, 'big'))
    ).toFixed(2);

    const rssBefore = peakRssBytes(server.proc.pid) ?? 0;
    const t0 = performance.now();
    const res = await fetch(`${url}/devices/big`);
    const bytes = (await res.arrayBuffer()).byteLength;
    row['GET /devices/big s'] = ((performance.now() - t0) / 1000).toFixed(2);
    row['its peak RSS growth MiB'] = (((peakRssBytes(server.proc.pid) ?? 0) - rssBefore) / 2 ** 20).toFixed(0);
    row['its MiB'] = (bytes / 2 ** 20).toFixed(1);

    const single = (device: string) => (i: number) => postBatch(url, JSON.stringify([{ device_id: device, ts: iso(BASE_MS + i * 1000), count: 1 }]));
    const alone = await writeLatencies(200, 5, single('lat-alone'));
    let looping = true;
    const loops = [0, 1].map(async () => {
      while (looping) await get(`${url}/v1/devices/big/aggregate?every=1h&fn=count,sum,min,max,avg`);
    });
    let during: number[];
    try {
      during = await writeLatencies(200, 5, single('lat-during'));
    } finally {
      looping = false;
      await Promise.allSettled(loops);
    }
    row['write p50/p99 ms alone'] = latencyText(alone);
    row['during aggregates'] = latencyText(during);

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
