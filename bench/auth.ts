/**
 * `npm run bench -- --auth`: what a key check costs. The same workloads as `npm run bench`'s single
 * and batch scenarios (POST /api/device-readings/create, 1 and 1,000 readings), against Tally with
 * TALLY_AUTH=off and with TALLY_AUTH=on and a key on every request, in alternation (open, keyed,
 * open, ...), `--pairs` times, each run on a fresh data dir. Reports each pair's ratio and the
 * median; target: keyed within 5% of open. Also times the check alone (KeyRing.authenticate) in
 * process.
 *
 *   npm run bench -- --auth [--duration 10] [--warmup 2] [--pairs 3] [--quick]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { KeyRing } from '../src/auth/key-ring.js';
import { issueKey } from '../src/domain/api-key.js';
import { openKeyStore, storeConfig } from '../src/store/index.js';
import type { KeyStore } from '../src/store/types.js';
import { measureCpu } from './cpu.js';
import { peakRssBytes, startPingServer, type Server } from './proc.js';
import { figures, machine, median, printFigures, printMachine, type RunFigures } from './report.js';
import { AckTracker, makeDevices, makeWorkload } from './workload.js';

const { values: flags } = parseArgs({
  options: { duration: { type: 'string' }, warmup: { type: 'string' }, pairs: { type: 'string' }, quick: { type: 'boolean', default: false } },
});
const durationS = Number(flags.duration ?? (flags.quick ? 2 : 10));
const warmupS = Number(flags.warmup ?? (flags.quick ? 0.5 : 2));
const pairs = Number(flags.pairs ?? (flags.quick ? 1 : 3));

const devices = makeDevices(1_000);
const SCENARIOS = [
  { name: 'single', readings: 1, connections: 100, bodies: 2_000_000 },
  { name: 'batch', readings: 1_000, connections: 10, bodies: 20_000 },
] as const;

/** A fresh data dir; with `keyed`, an ingest key created in it first (as `tally keys create` does). */
async function prepare(keyed: boolean): Promise<{ dir: string; key?: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-auth-'));
  if (!keyed) return { dir };
  const store = await openKeyStore(storeConfig(`sqlite:${join(dir, 'tally.db')}`));
  const issued = issueKey('bench', ['ingest'], null, Date.now() * 1000);
  await store.writeKeys({ kind: 'create', record: issued.record });
  await store.close();
  return { dir, key: issued.key };
}

async function run(scenario: (typeof SCENARIOS)[number], keyed: boolean): Promise<RunFigures> {
  const { dir, key } = await prepare(keyed);
  const server: Server = await startPingServer('tally', process.execPath, ['dist/app/cli.js', 'serve'], {
    TALLY_DATA_DIR: dir,
    TALLY_LOG_LEVEL: 'warn',
    TALLY_AUTH: keyed ? 'on' : 'off',
  });
  try {
    const tracker = new AckTracker(makeWorkload(scenario.name, devices, scenario.readings, scenario.bodies));
    const options = (duration: number): autocannon.Options => ({
      url: server.url + tracker.workload.path,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) },
      connections: scenario.connections,
      duration,
      timeout: 10,
      requests: [tracker.request()],
    });
    if (warmupS > 0) await autocannon(options(warmupS));
    const stopCpu = measureCpu(server.proc.pid);
    const result = await autocannon(options(durationS));
    const cpu = stopCpu();
    if (result.non2xx > 0) console.warn(`  note: ${result.non2xx} answers were not 2xx`);
    return figures(keyed ? 'tally (key)' : 'tally (open)', scenario.name, scenario.readings, { result, cpu }, peakRssBytes(server.proc.pid));
  } finally {
    await server.proc.stop(15_000);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The check alone: µs per KeyRing.authenticate of a valid key, among 1,000 keys. */
async function checkCost(): Promise<number> {
  const keys = Array.from({ length: 1_000 }, (_, i) => issueKey(`k${i}`, ['ingest'], null, 0));
  const store: KeyStore = { listKeys: async () => keys.map((k) => k.record), writeKeys: async () => true };
  const ring = new KeyRing(store);
  await ring.load();
  const n = 500_000;
  for (let i = 0; i < 50_000; i++) ring.authenticate(keys[i % 1000]!.key, i);
  const start = performance.now();
  for (let i = 0; i < n; i++) if (!ring.authenticate(keys[i % 1000]!.key, i).ok) throw new Error('a valid key was refused');
  return ((performance.now() - start) * 1000) / n;
}

/** Server CPU per answered request, µs: steadier than throughput on a shared machine. */
const cpuPerRequestUs = (f: RunFigures): number =>
  f.cpu === null ? NaN : ((f.cpu.serverPct / 100) * availableParallelism() * f.durationS * 1e6) / (f.requestsPerS * f.durationS);

printMachine(machine());
console.log(`key check alone: ${(await checkCost()).toFixed(2)} µs per request (KeyRing.authenticate, 1,000 keys)`);
const rows: RunFigures[] = [];
for (const scenario of SCENARIOS) {
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  for (let p = 0; p < pairs; p++) {
    const open = await run(scenario, false);
    const keyed = await run(scenario, true);
    rows.push(open, keyed);
    ratios.push(keyed.requestsPerS / open.requestsPerS);
    cpuRatios.push(cpuPerRequestUs(keyed) / cpuPerRequestUs(open));
    console.log(
      `${scenario.name} pair ${p + 1}: open ${open.requestsPerS.toFixed(0)} req/s at ${cpuPerRequestUs(open).toFixed(1)} CPU µs each, ` +
        `keyed ${keyed.requestsPerS.toFixed(0)} req/s at ${cpuPerRequestUs(keyed).toFixed(1)} µs; throughput ratio ${ratios.at(-1)!.toFixed(3)}`,
    );
  }
  console.log(
    `${scenario.name}: median keyed/open throughput ${median(ratios).toFixed(3)} (target >= 0.95), ` +
      `CPU per request ${median(cpuRatios).toFixed(3)} (target <= 1.05), over ${pairs} pairs`,
  );
}
printFigures(rows);
