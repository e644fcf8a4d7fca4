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
 *
 * With `--store postgres://user@host:port/db` Tally runs on PostgreSQL, each start on a fresh
 * database of that server (tally_bench_<pid>_<n>, dropped afterwards; `db` is only where they are
 * created from). Batch and NDJSON are then paired with the raw ceiling instead of the bare server:
 * the same bodies inserted by a bare `pg` pool with Tally's own statement (bench/pg-ceiling.ts),
 * `--ceiling-lanes` statements in flight (default: Tally's concurrent writes, pool_size - 1).
 * Scenario `two-nodes` (PostgreSQL only, in the default list there): the batch load on one Tally,
 * then split across two Tally processes on one database, in alternation.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { commitRates, commitTotals, type CommitRates, type CommitTotals } from './commits.js';
import { measureCpu, type CpuShare } from './cpu.js';
import { postgresConfig } from '../src/store/postgres/config.js';
import { eachLimited, peakRssBytes, startPingServer, type Server } from './proc.js';
import {
  figures,
  machine,
  mergeResults,
  pgTargets,
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
import { Ceiling } from './pg-ceiling.js';
import { freshDatabase } from './pg-db.js';
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
    scenarios: { type: 'string' },
    'cpu-prof': { type: 'string' },
    store: { type: 'string' },
    'ceiling-lanes': { type: 'string' },
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
const store = flags.store === undefined ? undefined : postgresConfig(flags.store);
if (flags.store !== undefined && !/^postgres(ql)?:/i.test(flags.store)) throw new Error('--store takes a postgres:// URL (SQLite is the default)');
const ceilingLanes = store === undefined ? 0 : positive('ceiling-lanes', flags['ceiling-lanes'] ?? Math.max(1, store.poolSize - 1));
const SCENARIOS = ['single', 'batch', 'ndjson', 'devices', ...(store === undefined ? [] : ['two-nodes'])];
const scenarios = new Set((flags.scenarios ?? SCENARIOS.join(',')).split(',').map((s) => s.trim()));
for (const name of scenarios) {
  if (!SCENARIOS.includes(name)) throw new Error(`--scenarios: unknown ${JSON.stringify(name)}; known: ${SCENARIOS.join(',')}${store === undefined ? ' (two-nodes needs --store)' : ''}`);
}
const DEVICES = 1_000;
const BATCH = 1_000;
/** NDJSON bodies: this many readings of each of the DEVICES devices. */
const NDJSON_PER_DEVICE = 10;
/** Distinct NDJSON bodies to build per second of load (each ~0.9 MB): 400k readings/s. */
const NDJSON_BODIES_PER_S = 40;
const tallyNodeArgs = flags['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', flags['cpu-prof']];

/** The built Tally (`npm run build` first) on `dataDir`, or on the PostgreSQL database `storeUrl`, logging warnings only. */
function startTally(dataDir: string, storeUrl?: string): Promise<Server> {
  return startPingServer('tally', process.execPath, [...tallyNodeArgs, 'dist/app/cli.js', 'serve'], {
    TALLY_DATA_DIR: dataDir,
    TALLY_LOG_LEVEL: 'warn',
    ...(storeUrl === undefined ? {} : { TALLY_STORE: storeUrl }),
  });
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

/**
 * Warms up, then measures, with every body unique until the workload runs out. Several servers (nodes
 * of one database) share the connections and the bodies; their results are merged.
 */
async function drive(
  servers: Server | readonly Server[],
  tracker: AckTracker,
  connections: number,
): Promise<{ result: autocannon.Result; cpu: CpuShare | null; commits?: CommitRates }> {
  const list = Array.isArray(servers) ? servers : [servers as Server];
  const share = (k: number) => Math.floor(connections / list.length) + (k < connections % list.length ? 1 : 0);
  const runs = await Promise.all(list.map((server, k) => driveOne(server, tracker, share(k), list.map((s) => s.proc.pid))));
  const result = runs.length === 1 ? runs[0]!.result : mergeResults(runs.map((r) => r.result));
  const totals = runs.map((r) => r.commits).filter((c) => c !== undefined);
  const add = (list: readonly CommitTotals[]): CommitTotals => ({
    commits: list.reduce((n, t) => n + t.commits, 0),
    readings: list.reduce((n, t) => n + t.readings, 0),
    seconds: list.reduce((n, t) => n + t.seconds, 0),
  });
  const commits = totals.length === 0 ? undefined : commitRates(add(totals.map((t) => t.before)), add(totals.map((t) => t.after)), result.duration);
  return { result, cpu: runs[0]!.cpu, ...(commits === undefined ? {} : { commits }) };
}

async function driveOne(
  server: Server,
  tracker: AckTracker,
  connections: number,
  cpuPids: readonly number[],
): Promise<{ result: autocannon.Result; cpu: CpuShare | null; commits?: { before: CommitTotals; after: CommitTotals } }> {
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
  const isTally = server.name.startsWith('tally');
  const before = isTally ? await commitTotals([server.url]) : undefined;
  const stopCpu = measureCpu(cpuPids);
  const result = await autocannon(options(durationS));
  const cpu = stopCpu();
  const commits = before === undefined ? undefined : { before, after: await commitTotals([server.url]) };
  // Repeated bodies only matter where they are stored.
  if (tracker.wrapped && isTally) console.warn(`  note: ${tracker.workload.name} ran out of distinct bodies; later ones repeated`);
  return { result, cpu, ...(commits === undefined ? {} : { commits }) };
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

/** What Tally is paired with in a scenario: the bare HTTP server, or the raw PostgreSQL ceiling. */
interface Partner {
  readonly name: string;
  /** One warmed-up, timed run. */
  measure(): Promise<RunFigures>;
  close(): Promise<void>;
}

/** The bare Fastify server, driven like Tally with bodies of its own. */
async function barePartner(workload: Workload, connections: number): Promise<Partner> {
  const bare = await startBare();
  const tracker = new AckTracker(workload);
  return {
    name: 'bare',
    measure: async () => figures('bare', workload.name, workload.readingsPerRequest, await drive(bare, tracker, connections), peakRssBytes(bare.proc.pid)),
    close: () => stop(bare),
  };
}

/** The same bodies into a fresh database by a bare `pg` pool running Tally's statement (bench/pg-ceiling.ts). */
async function ceilingPartner(workload: Workload, storeUrl: string): Promise<Partner> {
  const db = await freshDatabase(storeUrl, 'ceiling');
  try {
    const ceiling = await Ceiling.open(postgresConfig(db.url).connectionString, ceilingLanes);
    return {
      name: 'pg-ceiling',
      measure: async () => {
        if (warmupS > 0) await ceiling.run(workload, warmupS, false);
        return ceiling.run(workload, durationS);
      },
      close: async () => {
        await ceiling.close();
        await db.drop();
      },
    };
  } catch (err) {
    await db.drop();
    throw err;
  }
}

/**
 * One scenario: the partner (bare server or PostgreSQL ceiling) and Tally (on a fresh store)
 * measured in turn, `pairCount` times each; Tally's workload carries on from pass to pass, and its
 * count check covers them all. Returns the [tally, partner] figures of each pair.
 */
async function scenario(workload: Workload, connections: number, partnerOf: () => Promise<Partner>): Promise<{ pairs: Array<[RunFigures, RunFigures]>; check: CountCheck }> {
  const partner = await partnerOf();
  console.log(
    `\n${workload.name}: ${workload.readingsPerRequest} reading(s)/request, ${connections} connections, ` +
      `${pairCount} pair(s) of ${durationS} s runs (+${warmupS} s warm-up each), ${partner.name} then Tally` +
      (partner.name === 'pg-ceiling' ? ` (ceiling: ${ceilingLanes} statements in flight, one body each)` : ''),
  );
  try {
    return await withTally(async ([tally]) => {
      const tracker = new AckTracker(workload);
      const pairs: Array<[RunFigures, RunFigures]> = [];
      for (let p = 0; p < pairCount; p++) {
        const partnerFigures = await partner.measure();
        const tallyRun = await drive(tally!, tracker, connections);
        const tallyFigures = figures('tally', workload.name, workload.readingsPerRequest, tallyRun, peakRssBytes(tally!.proc.pid));
        printFigures([tallyFigures, partnerFigures]);
        pairs.push([tallyFigures, partnerFigures]);
      }
      const check = await checkCounts(tally!.url, tracker);
      printCheck(check);
      return { pairs, check };
    });
  } finally {
    await partner.close();
  }
}

/**
 * PostgreSQL only: the batch load on one Tally node, then split evenly across two nodes on one
 * database (each on a fresh database of its own), in alternation. Returns the [two, one] pairs.
 */
async function twoNodes(workload: Workload, connections: number): Promise<{ pairs: Array<[RunFigures, RunFigures]>; checks: CountCheck[] }> {
  console.log(
    `\ntwo-nodes: ${workload.readingsPerRequest} reading(s)/request, ${connections} connections in all, ` +
      `${pairCount} pair(s) of ${durationS} s runs (+${warmupS} s warm-up each), one node then two nodes on one database`,
  );
  return withTally(([one]) =>
    withTally(async (two) => {
      const oneTracker = new AckTracker(workload);
      const twoTracker = new AckTracker(workload);
      const pairs: Array<[RunFigures, RunFigures]> = [];
      for (let p = 0; p < pairCount; p++) {
        const oneFigures = figures('tally x1', workload.name, workload.readingsPerRequest, await drive(one!, oneTracker, connections), peakRssBytes(one!.proc.pid));
        const twoRun = await drive(two, twoTracker, connections);
        const rss = Math.max(...two.map((t) => peakRssBytes(t.proc.pid) ?? 0));
        const twoFigures = figures('tally x2', workload.name, workload.readingsPerRequest, twoRun, rss === 0 ? undefined : rss);
        printFigures([twoFigures, oneFigures]);
        pairs.push([twoFigures, oneFigures]);
      }
      const checks = [await checkCounts(one!.url, oneTracker), await checkCounts(two[0]!.url, twoTracker)];
      for (const check of checks) printCheck(check);
      return { pairs, checks };
    }, 2),
  );
}

/**
 * Runs `fn` against `nodes` Tally processes on one fresh store (a data dir each; with --store, one
 * fresh PostgreSQL database for them all), then stops them and removes the dirs and the database.
 */
async function withTally<T>(fn: (tally: Server[]) => Promise<T>, nodes = 1): Promise<T> {
  const dataDirs = Array.from({ length: nodes }, () => mkdtempSync(join(tmpdir(), 'tally-bench-')));
  const db = flags.store === undefined ? undefined : await freshDatabase(flags.store, 'tally');
  const started: Server[] = [];
  try {
    // One after the other: the first runs the migrations, the others find them done.
    for (const dir of dataDirs) started.push(await startTally(dir, db?.url));
    return await fn(started);
  } finally {
    for (const server of started) await stop(server);
    await db?.drop();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** Tally alone: load `deviceCount` devices, then time GET /v1/devices. */
async function deviceListings(): Promise<DevicesRun> {
  console.log(
    `\ndevices: ${deviceCount.toLocaleString('en-US')} devices; ${passes} full pass(es) of each listing, one request at a time; ` +
      `then ${devicesConnections} connections, ${durationS} s (+${warmupS} s warm-up)`,
  );
  return withTally(async ([tally]) => {
    const run = await devicesScenario(tally!, makeDevices(deviceCount), { passes, connections: devicesConnections, warmupS, durationS });
    printDevices(run);
    return run;
  });
}

async function main(): Promise<void> {
  const host = machine();
  const source = gitDescribe();
  printMachine(host);
  const tallyEnv = Object.entries(process.env).filter(([name]) => name.startsWith('TALLY_')).map(([k, v]) => `${k}=${v}`);
  const storeName = store === undefined ? 'SQLite' : `PostgreSQL (${store.display}: a fresh database for each start)`;
  console.log(`Tally: built, ${storeName}, defaults${tallyEnv.length > 0 ? ` except ${tallyEnv.join(' ')}` : ''}; ${DEVICES} UUID devices; source ${source}`);

  // Enough distinct bodies for the fastest plausible rate of each, built before any timing (one
  // workload at a time, so only one set of bodies is held).
  const devices = makeDevices(DEVICES);
  const seconds = (durationS + warmupS) * pairCount;
  // On PostgreSQL, the bodies that are database-bound are paired with the raw ceiling; single
  // readings (grouped by Tally, one by one in a bare script) stay paired with the bare server.
  const partner = (workload: Workload, connections: number, raw: boolean) => () =>
    raw && flags.store !== undefined ? ceilingPartner(workload, flags.store) : barePartner(workload, connections);
  const run = (name: string, make: () => Workload, connections: number, raw: boolean) => {
    if (!scenarios.has(name)) return Promise.resolve(undefined);
    const workload = make();
    return scenario(workload, connections, partner(workload, connections, raw));
  };
  const singleRun = await run('single', () => makeWorkload('single', devices, 1, seconds * 60_000), singleConnections, false);
  const batchRun = await run('batch', () => makeWorkload('batch', devices, BATCH, seconds * 6_000), batchConnections, true);
  const ndjsonRun = await run('ndjson', () => makeNdjsonWorkload('ndjson', devices, NDJSON_PER_DEVICE, seconds * NDJSON_BODIES_PER_S), ndjsonConnections, true);
  const twoNodesRun = scenarios.has('two-nodes') ? await twoNodes(makeWorkload('two-nodes', devices, BATCH, seconds * 6_000), batchConnections) : undefined;
  const devicesRun = scenarios.has('devices') ? await deviceListings() : undefined;

  const done = [singleRun, batchRun, ndjsonRun].filter((r) => r !== undefined);
  const runs = [...done.flatMap((r) => r.pairs.flat()), ...(twoNodesRun?.pairs.flat() ?? [])];
  const checks = [...done.map((r) => r.check), ...(twoNodesRun?.checks ?? [])];
  const goals = store === undefined ? targets(singleRun?.pairs, batchRun?.pairs) : pgTargets(batchRun?.pairs, twoNodesRun?.pairs);
  console.log('\nsummary');
  if (runs.length > 0) printFigures(runs);
  for (const check of checks) printCheck(check);
  if (devicesRun !== undefined) printDevices(devicesRun);
  printTargets(goals);

  const out = new URL(store === undefined ? './results/latest.json' : './results/latest-postgres.json', import.meta.url);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const options = {
    scenarios: [...scenarios],
    durationS,
    warmupS,
    singleConnections,
    batchConnections,
    ndjsonConnections,
    devicesConnections,
    ...(store === undefined ? {} : { store: store.display, ceilingLanes, poolSize: store.poolSize }),
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
