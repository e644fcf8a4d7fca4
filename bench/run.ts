/**
 * `npm run bench`: Tally (built, embedded store, fresh data dir) against a bare Fastify server that
 * only parses the same bodies, for single-reading posts and 1,000-reading batches, with a check
 * after each Tally run that it stored exactly what it acknowledged.
 *
 *   npm run bench -- [--duration 10] [--warmup 2] [--quick] [--single-connections 100]
 *                    [--batch-connections 10] [--cpu-prof DIR]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { measureCpu, type CpuShare } from './cpu.js';
import {
  figures,
  machine,
  printCheck,
  printFigures,
  printMachine,
  printTargets,
  targets,
  type CountCheck,
  type RunFigures,
} from './report.js';
import { startBare, startTally, type ServerProcess } from './servers.js';
import { AckTracker, makeDevices, makeWorkload, PATH, type Workload } from './workload.js';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'single-connections': { type: 'string', default: '100' },
    'batch-connections': { type: 'string', default: '10' },
    'cpu-prof': { type: 'string' },
  },
});
function positive(name: string, raw: string | number, allowZero = false): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !allowZero)) throw new Error(`--${name} must be a positive number, got ${raw}`);
  return value;
}
const durationS = positive('duration', flags.duration ?? (flags.quick ? 2 : 10));
const warmupS = positive('warmup', flags.warmup ?? (flags.quick ? 0.5 : 2), true);
const singleConnections = positive('single-connections', flags['single-connections']);
const batchConnections = positive('batch-connections', flags['batch-connections']);
const DEVICES = 1_000;
const BATCH = 1_000;
const tallyNodeArgs = flags['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', flags['cpu-prof']];

/** Warms up, then measures, with every body unique until the workload runs out. */
async function drive(server: ServerProcess, tracker: AckTracker, connections: number): Promise<{ result: autocannon.Result; cpu: CpuShare | null }> {
  const options = (duration: number): autocannon.Options => ({
    url: server.url + PATH,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections,
    pipelining: 1,
    duration,
    timeout: 10,
    requests: [tracker.request()],
  });
  if (warmupS > 0) await autocannon(options(warmupS));
  const stopCpu = measureCpu(server.pid);
  const result = await autocannon(options(durationS));
  const cpu = stopCpu();
  if (tracker.wrapped) console.warn(`  note: ${tracker.workload.name} ran out of distinct bodies; later ones repeated`);
  return { result, cpu };
}

/** The commit measured, marked -dirty when the working tree differs from it. */
function gitDescribe(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function storedSum(url: string, devices: readonly string[]): Promise<number> {
  let sum = 0;
  await eachLimited(devices, 16, async (id) => {
    const res = await fetch(`${url}/api/device-readings/${id}/cumulative-count`);
    if (res.status === 404) return void (await res.arrayBuffer());
    if (!res.ok) throw new Error(`cumulative-count of ${id}: HTTP ${res.status}`);
    sum += ((await res.json()) as { cumulative_count: number }).cumulative_count;
  });
  return sum;
}

/**
 * Acknowledged readings must all be stored, and at most the unanswered ones on top. Retrying the
 * unanswered bodies (safe: first write wins) must then make stored and acknowledged equal exactly.
 */
async function checkCounts(url: string, tracker: AckTracker): Promise<CountCheck> {
  const { workload } = tracker;
  const acknowledged = tracker.ackedCountSum();
  const unansweredBodies = tracker.unacknowledged();
  const unanswered = unansweredBodies.reduce((sum, i) => sum + workload.countSum(i), 0);
  const storedAfterRun = await storedSum(url, workload.devices);
  let retriesRefused = 0;
  await eachLimited(unansweredBodies, 8, async (i) => {
    const res = await fetch(url + PATH, { method: 'POST', headers: { 'content-type': 'application/json' }, body: new Uint8Array(workload.body(i)) });
    await res.arrayBuffer();
    if (res.ok) tracker.markAcked(i);
    else retriesRefused++;
  });
  const acknowledgedAfterRetry = tracker.ackedCountSum();
  const storedAfterRetry = await storedSum(url, workload.devices);
  return {
    scenario: workload.name,
    acknowledged,
    unansweredRequests: unansweredBodies.length,
    unanswered,
    storedAfterRun,
    acknowledgedAfterRetry,
    storedAfterRetry,
    pass:
      acknowledged <= storedAfterRun &&
      storedAfterRun <= acknowledged + unanswered &&
      retriesRefused === 0 &&
      storedAfterRetry === acknowledgedAfterRetry,
  };
}

/** One scenario: the bare ceiling, then Tally on a fresh data dir. Returns [tally, bare] figures. */
async function scenario(workload: Workload, connections: number): Promise<{ runs: [RunFigures, RunFigures]; check: CountCheck }> {
  console.log(`\n${workload.name}: ${workload.readingsPerRequest} reading(s)/request, ${connections} connections, ${durationS} s (+${warmupS} s warm-up)`);

  const bare = await startBare();
  const bareRun = await drive(bare, new AckTracker(workload), connections);
  const bareFigures = figures('bare', workload.name, workload.readingsPerRequest, bareRun, bare.peakRss());
  await bare.stop();

  const dataDir = mkdtempSync(join(tmpdir(), 'tally-bench-'));
  try {
    const tally = await startTally(dataDir, tallyNodeArgs);
    try {
      const tracker = new AckTracker(workload);
      const tallyRun = await drive(tally, tracker, connections);
      const tallyFigures = figures('tally', workload.name, workload.readingsPerRequest, tallyRun, tally.peakRss());
      printFigures([tallyFigures, bareFigures]);
      const check = await checkCounts(tally.url, tracker);
      printCheck(check);
      return { runs: [tallyFigures, bareFigures], check };
    } finally {
      await tally.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const host = machine();
  const source = gitDescribe();
  printMachine(host);
  const tallyEnv = Object.entries(process.env).filter(([name]) => name.startsWith('TALLY_')).map(([k, v]) => `${k}=${v}`);
  console.log(`Tally: built, SQLite, defaults${tallyEnv.length > 0 ? ` except ${tallyEnv.join(' ')}` : ''}; ${DEVICES} UUID devices; source ${source}`);

  // Enough distinct bodies for the fastest plausible rate of each, built before any timing.
  const devices = makeDevices(DEVICES);
  const seconds = durationS + warmupS;
  const single = makeWorkload('single', devices, 1, seconds * 60_000);
  const batch = makeWorkload('batch', devices, BATCH, seconds * 6_000);

  const singleRun = await scenario(single, singleConnections);
  const batchRun = await scenario(batch, batchConnections);

  const runs = [...singleRun.runs, ...batchRun.runs];
  const checks = [singleRun.check, batchRun.check];
  const goals = targets(singleRun.runs, batchRun.runs);
  console.log('\nsummary');
  printFigures(runs);
  for (const check of checks) printCheck(check);
  printTargets(goals);

  const out = new URL('./results/latest.json', import.meta.url);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const options = { durationS, warmupS, singleConnections, batchConnections, devices: DEVICES, batchReadings: BATCH };
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), machine: host, source, tallyEnv, options, runs, checks, targets: goals }, null, 2)}\n`);
  console.log(`\nwrote ${out.pathname}`);

  if (checks.some((c) => !c.pass)) {
    console.error('FAIL: Tally did not store exactly what it acknowledged');
    process.exitCode = 1;
  }
}

await main();
