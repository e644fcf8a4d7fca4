/**
 * `npm run bench`: Tally (built, embedded store, fresh data dir) against a bare Fastify server that
 * only parses the same bodies, for single-reading posts, 1,000-reading batches and 10,000-reading
 * NDJSON bodies of 1,000 devices on /v1, with a check after each Tally run that it stored exactly
 * what it acknowledged; then GET /v1/devices paging through 100,000 devices.
 *
 * Each scenario measures the two servers in alternation, `--pairs` times (bare, Tally, bare, ...),
 * and reports the ratio of each pair and their median: on a shared machine the ceiling moves from
 * minute to minute, and a ratio is only as good as the two figures being taken close together.
 *
 *   npm run bench -- [--duration 10] [--warmup 2] [--pairs 3] [--quick] [--scenarios single,batch,ndjson,devices]
 *                    [--single-connections 100] [--batch-connections 10] [--ndjson-connections 4]
 *                    [--devices-connections 8] [--device-count 100000] [--passes 3] [--cpu-prof DIR]
 *   npm run bench -- --mqtt [bench/mqtt.ts's flags]     the MQTT benchmark instead (as npm run bench:mqtt)
 *   npm run bench -- --auth [bench/auth.ts's flags]     what a key check costs (open against keyed)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { measureCpu, type CpuShare } from './cpu.js';
import { eachLimited, peakRssBytes, startPingServer, type Server } from './proc.js';
import {
  figures,
  machine,
  printCheck,
  printDevices,
  printFigures,
  printMachine,
  printTargets,
  targets,
  type CountCheck,
  type DevicesRun,
  type RunFigures,
} from './report.js';
import { devicesScenario, storedTotals } from './v1.js';
import { AckTracker, makeDevices, makeNdjsonWorkload, makeWorkload, type Workload } from './workload.js';

// `npm run bench -- --mqtt|--auth [flags]` runs bench/mqtt.ts or bench/auth.ts (their own flags) in
// place of everything below: a process of its own, as `npm run bench:mqtt` runs the first.
for (const [flag, script] of [['--mqtt', './mqtt.ts'], ['--auth', './auth.ts']] as const) {
  if (!process.argv.includes(flag)) continue;
  const rest = process.argv.slice(2).filter((arg) => arg !== flag);
  const { status } = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(script, import.meta.url)), ...rest], { stdio: 'inherit' });
  process.exit(status ?? 1);
}

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'single-connections': { type: 'string', default: '100' },
    'batch-connections': { type: 'string', default: '10' },
    'ndjson-connections': { type: 'string', default: '4' },
    'devices-connections': { type: 'string', default: '8' },
    'device-count': { type: 'string', default: '100000' },
    passes: { type: 'string' },
    pairs: { type: 'string' },
    scenarios: { type: 'string', default: 'single,batch,ndjson,devices' },
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
const ndjsonConnections = positive('ndjson-connections', flags['ndjson-connections']);
const devicesConnections = positive('devices-connections', flags['devices-connections']);
const deviceCount = positive('device-count', flags['device-count']);
const passes = positive('passes', flags.passes ?? (flags.quick ? 1 : 3));
const pairCount = positive('pairs', flags.pairs ?? (flags.quick ? 1 : 3));
const SCENARIOS = ['single', 'batch', 'ndjson', 'devices'] as const;
const scenarios = new Set(flags.scenarios.split(',').map((s) => s.trim()));
for (const name of scenarios) {
  if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`--scenarios: unknown ${JSON.stringify(name)}; known: ${SCENARIOS.join(',')}`);
}
const DEVICES = 1_000;
const BATCH = 1_000;
/** NDJSON bodies: this many readings of each of the DEVICES devices. */
const NDJSON_PER_DEVICE = 10;
/** Distinct NDJSON bodies to build per second of load (each ~0.9 MB): 400k readings/s. */
const NDJSON_BODIES_PER_S = 40;
const tallyNodeArgs = flags['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', flags['cpu-prof']];

/** The built Tally (`npm run build` first) on `dataDir`, logging warnings only. */
function startTally(dataDir: string): Promise<Server> {
  return startPingServer('tally', process.execPath, [...tallyNodeArgs, 'dist/app/cli.js', 'serve'], { TALLY_DATA_DIR: dataDir, TALLY_LOG_LEVEL: 'warn' });
}

/** The bare Fastify server: parses the body, answers 202, stores nothing. */
function startBare(): Promise<Server> {
  return startPingServer('bare', process.execPath, ['--import', 'tsx', 'bench/bare-server.ts'], {});
}

/** SIGTERM, then SIGKILL if it has not exited within 15 s; then what it wrote to stderr, if anything. */
async function stop(server: Server): Promise<void> {
  if (!server.proc.alive()) return;
  await server.proc.stop(15_000);
  const stderr = server.proc.stderr();
  if (stderr.trim() !== '') process.stderr.write(`[${server.name} stderr]\n${stderr}\n`);
}

/** Warms up, then measures, with every body unique until the workload runs out. */
async function drive(server: Server, tracker: AckTracker, connections: number): Promise<{ result: autocannon.Result; cpu: CpuShare | null }> {
  const options = (duration: number): autocannon.Options => ({
    url: server.url + tracker.workload.path,
    method: 'POST',
    headers: { 'content-type': tracker.workload.contentType },
    connections,
    pipelining: 1,
    duration,
    timeout: 10,
    requests: [tracker.request()],
  });
  if (warmupS > 0) await autocannon(options(warmupS));
  const stopCpu = measureCpu(server.proc.pid);
  const result = await autocannon(options(durationS));
  const cpu = stopCpu();
  // Repeated bodies only matter where they are stored.
  if (tracker.wrapped && server.name === 'tally') console.warn(`  note: ${tracker.workload.name} ran out of distinct bodies; later ones repeated`);
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

/** Stored sums of counts, and of readings where the workload's answers say how many were accepted (/v1). */
async function stored(url: string, workload: Workload): Promise<{ counts: number; readings?: number }> {
  return workload.answersAccepted ? storedTotals(url) : { counts: await storedSum(url, workload.devices) };
}

/**
 * Acknowledged readings must all be stored, and at most the unanswered ones on top. Retrying the
 * unanswered bodies (safe: first write wins) must then make stored and acknowledged equal exactly.
 * On /v1 the same holds for the readings each answer says it accepted.
 */
async function checkCounts(url: string, tracker: AckTracker): Promise<CountCheck> {
  const { workload } = tracker;
  const acknowledged = tracker.ackedCountSum();
  const acceptedInRun = tracker.acceptedSum;
  const bodiesAcknowledged = tracker.ackedBodies();
  const unansweredBodies = tracker.unacknowledged();
  const unanswered = unansweredBodies.reduce((sum, i) => sum + workload.countSum(i), 0);
  const afterRun = await stored(url, workload);
  const storedAfterRun = afterRun.counts;
  let retriesRefused = 0;
  await eachLimited(unansweredBodies, 8, async (i) => {
    const res = await fetch(url + workload.path, { method: 'POST', headers: { 'content-type': workload.contentType }, body: new Uint8Array(workload.body(i)) });
    const answer = await res.text();
    if (res.ok) tracker.ack(i, answer);
    else retriesRefused++;
  });
  const acknowledgedAfterRetry = tracker.ackedCountSum();
  const afterRetry = await stored(url, workload);
  const storedAfterRetry = afterRetry.counts;
  const readings =
    afterRun.readings === undefined || afterRetry.readings === undefined
      ? undefined
      : {
          acknowledged: bodiesAcknowledged * workload.readingsPerRequest,
          acceptedInRun,
          storedAfterRun: afterRun.readings,
          acknowledgedAfterRetry: tracker.ackedBodies() * workload.readingsPerRequest,
          acceptedAfterRetry: tracker.acceptedSum,
          storedAfterRetry: afterRetry.readings,
        };
  return {
    scenario: workload.name,
    acknowledged,
    unansweredRequests: unansweredBodies.length,
    unanswered,
    storedAfterRun,
    acknowledgedAfterRetry,
    storedAfterRetry,
    ...(readings === undefined ? {} : { readings }),
    pass:
      acknowledged <= storedAfterRun &&
      storedAfterRun <= acknowledged + unanswered &&
      retriesRefused === 0 &&
      storedAfterRetry === acknowledgedAfterRetry &&
      (readings === undefined ||
        (readings.acknowledged <= readings.storedAfterRun &&
          readings.storedAfterRun <= readings.acknowledged + unansweredBodies.length * workload.readingsPerRequest &&
          readings.storedAfterRetry === readings.acknowledgedAfterRetry &&
          readings.acceptedInRun <= readings.storedAfterRun &&
          readings.acceptedAfterRetry <= readings.storedAfterRetry)),
  };
}

/**
 * One scenario: the bare ceiling and Tally (on a fresh data dir) measured in turn, `pairCount`
 * times each; Tally's workload carries on from pass to pass, and its count check covers them all.
 * Returns the [tally, bare] figures of each pair.
 */
async function scenario(workload: Workload, connections: number): Promise<{ pairs: Array<[RunFigures, RunFigures]>; check: CountCheck }> {
  console.log(
    `\n${workload.name}: ${workload.readingsPerRequest} reading(s)/request, ${connections} connections, ` +
      `${pairCount} pair(s) of ${durationS} s runs (+${warmupS} s warm-up each), bare then Tally`,
  );
  const bare = await startBare();
  try {
    return await withTally(async (tally) => {
      const tracker = new AckTracker(workload);
      const bareTracker = new AckTracker(workload);
      const pairs: Array<[RunFigures, RunFigures]> = [];
      for (let p = 0; p < pairCount; p++) {
        const bareRun = await drive(bare, bareTracker, connections);
        const bareFigures = figures('bare', workload.name, workload.readingsPerRequest, bareRun, peakRssBytes(bare.proc.pid));
        const tallyRun = await drive(tally, tracker, connections);
        const tallyFigures = figures('tally', workload.name, workload.readingsPerRequest, tallyRun, peakRssBytes(tally.proc.pid));
        printFigures([tallyFigures, bareFigures]);
        pairs.push([tallyFigures, bareFigures]);
      }
      const check = await checkCounts(tally.url, tracker);
      printCheck(check);
      return { pairs, check };
    });
  } finally {
    await stop(bare);
  }
}

/** Runs `fn` against Tally on a fresh data dir, then stops it and removes the dir. */
async function withTally<T>(fn: (tally: Server) => Promise<T>): Promise<T> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-bench-'));
  try {
    const tally = await startTally(dataDir);
    try {
      return await fn(tally);
    } finally {
      await stop(tally);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Tally alone: load `deviceCount` devices, then time GET /v1/devices. */
async function deviceListings(): Promise<DevicesRun> {
  console.log(
    `\ndevices: ${deviceCount.toLocaleString('en-US')} devices; ${passes} full pass(es) of each listing, one request at a time; ` +
      `then ${devicesConnections} connections, ${durationS} s (+${warmupS} s warm-up)`,
  );
  return withTally(async (tally) => {
    const run = await devicesScenario(tally, makeDevices(deviceCount), { passes, connections: devicesConnections, warmupS, durationS });
    printDevices(run);
    return run;
  });
}

async function main(): Promise<void> {
  const host = machine();
  const source = gitDescribe();
  printMachine(host);
  const tallyEnv = Object.entries(process.env).filter(([name]) => name.startsWith('TALLY_')).map(([k, v]) => `${k}=${v}`);
  console.log(`Tally: built, SQLite, defaults${tallyEnv.length > 0 ? ` except ${tallyEnv.join(' ')}` : ''}; ${DEVICES} UUID devices; source ${source}`);

  // Enough distinct bodies for the fastest plausible rate of each, built before any timing (one
  // workload at a time, so only one set of bodies is held).
  const devices = makeDevices(DEVICES);
  const seconds = (durationS + warmupS) * pairCount;
  const run = (name: string, make: () => Workload, connections: number) =>
    scenarios.has(name) ? scenario(make(), connections) : Promise.resolve(undefined);
  const singleRun = await run('single', () => makeWorkload('single', devices, 1, seconds * 60_000), singleConnections);
  const batchRun = await run('batch', () => makeWorkload('batch', devices, BATCH, seconds * 6_000), batchConnections);
  const ndjsonRun = await run('ndjson', () => makeNdjsonWorkload('ndjson', devices, NDJSON_PER_DEVICE, seconds * NDJSON_BODIES_PER_S), ndjsonConnections);
  const devicesRun = scenarios.has('devices') ? await deviceListings() : undefined;

  const done = [singleRun, batchRun, ndjsonRun].filter((r) => r !== undefined);
  const runs = done.flatMap((r) => r.pairs.flat());
  const checks = done.map((r) => r.check);
  const goals = targets(singleRun?.pairs, batchRun?.pairs);
  console.log('\nsummary');
  if (runs.length > 0) printFigures(runs);
  for (const check of checks) printCheck(check);
  if (devicesRun !== undefined) printDevices(devicesRun);
  printTargets(goals);

  const out = new URL('./results/latest.json', import.meta.url);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const options = {
    scenarios: [...scenarios],
    durationS,
    warmupS,
    singleConnections,
    batchConnections,
    ndjsonConnections,
    devicesConnections,
    devices: DEVICES,
    batchReadings: BATCH,
    ndjsonReadings: DEVICES * NDJSON_PER_DEVICE,
    deviceCount,
    passes,
    pairs: pairCount,
  };
  const report = { date: new Date().toISOString(), machine: host, source, tallyEnv, options, runs, checks, devices: devicesRun ?? null, targets: goals };
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwrote ${out.pathname}`);

  if (checks.some((c) => !c.pass)) {
    console.error('FAIL: Tally did not store exactly what it acknowledged');
    process.exitCode = 1;
  }
  if (devicesRun !== undefined && !devicesRun.pass) {
    console.error('FAIL: GET /v1/devices did not list every device exactly once');
    process.exitCode = 1;
  }
}

await main();
