/**
 * `npm run bench:peers`: the same workloads against Tally, InfluxDB 1.x and VictoriaMetrics, each
 * workload on one system after the other (so their figures are minutes apart at most), each on a
 * fresh data dir and started and stopped here by PID on 127.0.0.1. A peer that is not installed is
 * skipped with the package to install. Results, tables, charts and a BENCHMARKS.md section go to
 * bench/results/.
 *
 * `--phases reads` (not among the defaults: it loads 3 M readings into each system) runs the reads
 * workload (bench/peers/reads.ts) on Tally and InfluxDB instead, `--passes` times.
 *
 *   npm run bench:peers -- [--quick] [--systems tally,tally-lp,influxdb,victoria-metrics] [--phases bulk,single,crash|reads] [--seed 1]
 *     [--bulk-steps 2000] [--bulk-warmup-steps 2000] [--single-seconds 15] [--single-warmup 10] [--crash-seconds 24] [--crash-kill-after 20] [--passes 3] [--cpu-prof DIR]
 *     [--out bench/results] [--prefix peers] [--report-only FILE.json] [--max-wait 3600]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, diskWriteBytes, peakRssBytes, pgrep, ROOT, sleep } from '../proc.js';
import { hardware } from '../report.js';
import { checkCrash, checkSums, classifyDuplicates, expectations } from './correctness.js';
import { Ledger, runLoad, type LoadResult } from './load.js';
import { goals, renderTables, writeReport, type CrashResult, type PeersResults, type SystemResult, type WarmupFigures, type WorkloadFigures } from './report.js';
import { readsTable, readsWorkload, type ReadsRow } from './reads.js';
import { influxdb, SYSTEM_IDS, tally, tallyLineProtocol, tallySettings, victoriaMetrics, type Server, type System, type SystemId } from './systems.js';
import { bulkPlan, deviceIds, duplicatesPlan, readingsIn, render, singlePlan, type Bodies, type Format, type Plan } from './workload.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    systems: { type: 'string', default: SYSTEM_IDS.join(',') },
    phases: { type: 'string', default: 'bulk,single,crash' },
    seed: { type: 'string', default: '1' },
    devices: { type: 'string', default: '1000' },
    'bulk-steps': { type: 'string' },
    'bulk-warmup-steps': { type: 'string' },
    'bulk-connections': { type: 'string', default: '8' },
    'duplicate-fraction': { type: 'string', default: '0.1' },
    'single-seconds': { type: 'string' },
    'single-warmup': { type: 'string' },
    'single-connections': { type: 'string', default: '64' },
    'crash-seconds': { type: 'string' },
    'crash-kill-after': { type: 'string' },
    passes: { type: 'string' },
    'cpu-prof': { type: 'string' },
    out: { type: 'string', default: join(ROOT, 'bench/results') },
    prefix: { type: 'string' },
    'data-root': { type: 'string', default: tmpdir() },
    'keep-data': { type: 'boolean', default: false },
    'report-only': { type: 'string' },
    'max-wait': { type: 'string', default: '3600' },
    'reads-big': { type: 'string' },
    'reads-fleet': { type: 'string' },
    'reads-rounds': { type: 'string', default: '5' },
  },
});

const quick = flags.quick!;
const num = (value: string | undefined, quickDefault: number, fullDefault: number) => Number(value ?? (quick ? quickDefault : fullDefault));
const options = {
  seed: Number(flags.seed),
  devices: Number(flags.devices),
  bulkSteps: num(flags['bulk-steps'], 100, 2000),
  bulkWarmupSteps: num(flags['bulk-warmup-steps'], 10, 2000),
  bulkConnections: Number(flags['bulk-connections']),
  duplicateFraction: Number(flags['duplicate-fraction']),
  singleSeconds: num(flags['single-seconds'], 3, 15),
  singleWarmupSeconds: num(flags['single-warmup'], 0.5, 10),
  singleConnections: Number(flags['single-connections']),
  crashSeconds: num(flags['crash-seconds'], 3, 24),
  crashKillAfterSeconds: num(flags['crash-kill-after'], 1.5, 20),
  passes: num(flags.passes, 1, 3),
  /**
   * Bulk warm-up is timed in parts of this many steps. A fresh Node.js process is still warming up
   * (compiling its hot paths, sizing its heap) while it runs: Tally's first 1,000 steps ran at
   * 0.5-0.6 of its speed after 4,000, and so did a restart on the same data dir, so it is the
   * process, not the data (bench/peers/warmup.ts, BENCHMARKS.md).
   */
  bulkWarmupPartSteps: 1000,
  tally: tallySettings(),
};
for (const [key, value] of Object.entries(options)) {
  if (typeof value === 'number' && !(Number.isFinite(value) && value > 0)) throw new Error(`--${key}: expected a positive number, got ${value}`);
}
if (options.crashKillAfterSeconds >= options.crashSeconds) throw new Error('--crash-kill-after must be less than --crash-seconds');
const prefix = flags.prefix ?? (quick ? 'peers-quick' : 'peers');
const outDir = resolve(flags.out!);
/** Most single-reading requests per second any system is expected to reach here; bodies for this many are pre-generated. */
const MAX_SINGLE_RATE = 40_000;
/** Time limit of one bulk pass, seconds. */
const BULK_MAX_SECONDS = 600;

// ---------------------------------------------------------------------------------------------

const tempDirs = new Set<string>();
process.once('exit', () => {
  if (flags['keep-data']) return;
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the servers this bench started`);
    process.exit(130); // the exit handlers kill our children by PID and remove the data dirs
  });
}

function freshDir(system: SystemId, phase: string): string {
  const dir = mkdtempSync(join(flags['data-root']!, `tally-peers-${system}-${phase}-`));
  tempDirs.add(dir);
  return dir;
}

function dropDir(dir: string): void {
  if (flags['keep-data']) return;
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Never overlaps with `npm run bench` (bench/run.ts): waits until it is not running. */
async function waitForOtherBench(): Promise<void> {
  const maxWaitS = Number(flags['max-wait']);
  const started = Date.now();
  let told = 0;
  for (;;) {
    const others = pgrep('bench/run.ts');
    if (others.length === 0) return;
    if (Date.now() - started > maxWaitS * 1000) {
      throw new Error(`bench/run.ts (pid ${others.join(', ')}) still running after ${maxWaitS} s; not overlapping with it`);
    }
    if (Date.now() - told > 30_000) {
      console.log(`  waiting: bench/run.ts is running (pid ${others.join(', ')}); the two benches never overlap`);
      told = Date.now();
    }
    await sleep(5_000);
  }
}

function machine(): PeersResults['machine'] {
  let os = `${process.platform} ${release()}`;
  try {
    os = `Debian ${readFileSync('/etc/debian_version', 'utf8').trim()}, Linux ${release()}`;
  } catch {
    // not Debian
  }
  let filesystem = 'unknown';
  try {
    const line = execFileSync('df', ['-T', flags['data-root']!], { encoding: 'utf8' }).trim().split('\n')[1] ?? '';
    const [device, type] = line.split(/\s+/);
    filesystem = `${type} (${device}, ${flags['data-root']})`;
  } catch {
    // no df
  }
  const { cpu, cores, memoryGiB, node } = hardware();
  return { cpu, cores, memoryGiB, os, node, filesystem };
}

// ---------------------------------------------------------------------------------------------
// Workloads, generated and rendered once before any timing.

interface Workloads {
  readonly ids: string[];
  readonly bulk: Plan;
  readonly duplicates: Plan;
  readonly single: Plan;
  readonly crash: Plan;
  readonly bodies: Record<Format, { bulk: Bodies; duplicates: Bodies; single: Bodies; crash: Bodies }>;
}

function makeWorkloads(formats: ReadonlySet<Format>): Workloads {
  const t0 = performance.now();
  const { seed, devices } = options;
  const ids = deviceIds(devices);
  const bulk = bulkPlan(seed, devices, options.bulkWarmupSteps + options.bulkSteps);
  const duplicates = duplicatesPlan(seed + 1, bulk, options.duplicateFraction, options.bulkWarmupSteps, devices);
  const single = singlePlan(seed + 2, devices, Math.ceil((options.singleSeconds + options.singleWarmupSeconds) * MAX_SINGLE_RATE));
  const crash = singlePlan(seed + 3, devices, Math.ceil((options.crashKillAfterSeconds + 2) * MAX_SINGLE_RATE), undefined, 'crash');
  const bodies = {} as Workloads['bodies'];
  for (const format of formats) {
    bodies[format] = {
      bulk: render(bulk, format, ids),
      duplicates: render(duplicates, format, ids),
      single: render(single, format, ids),
      crash: render(crash, format, ids),
    };
  }
  const mib = Object.values(bodies).reduce((sum, b) => sum + b.bulk.bytes + b.duplicates.bytes + b.single.bytes + b.crash.bytes, 0) / 2 ** 20;
  console.log(
    `workloads (seed ${seed}): bulk ${bulk.readings.toLocaleString('en-US')} readings in ${bulk.bodies} bodies ` +
      `(${options.bulkWarmupSteps} warm-up), duplicates ${duplicates.readings.toLocaleString('en-US')}, ` +
      `single up to ${single.bodies.toLocaleString('en-US')}, crash up to ${crash.bodies.toLocaleString('en-US')}; ` +
      `${mib.toFixed(0)} MiB of bodies in ${[...formats].join(' + ')}, built in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return { ids, bulk, duplicates, single, crash, bodies };
}

// ---------------------------------------------------------------------------------------------

/** Server CPU seconds and disk write bytes so far, sampled around a timed run. */
interface Usage {
  readonly cpuS: number | undefined;
  readonly diskBytes: number | undefined;
}

function usage(server: Server): Usage {
  return { cpuS: cpuSeconds(server.proc.pid), diskBytes: diskWriteBytes(server.proc.pid) };
}

function figures(load: LoadResult, readingsPerRequest: number, before: Usage, after: Usage, server: Server): Omit<WorkloadFigures, 'sums'> {
  const serverCpuS = before.cpuS === undefined || after.cpuS === undefined ? null : after.cpuS - before.cpuS;
  const diskBytes = before.diskBytes === undefined || after.diskBytes === undefined ? null : after.diskBytes - before.diskBytes;
  const peak = peakRssBytes(server.proc.pid);
  return {
    ...load,
    readingsPerRequest,
    serverCpuS,
    cpuSPerMillion: serverCpuS === null || load.okReadings === 0 ? null : (serverCpuS / load.okReadings) * 1e6,
    diskMiBPerMillion: diskBytes === null || load.okReadings === 0 ? null : (diskBytes / 2 ** 20 / load.okReadings) * 1e6,
    peakRssMiB: peak === undefined ? null : peak / 2 ** 20,
  };
}

/** Runs one part of a warm-up and says what it did. */
async function timedWarmup(server: Server, run: () => Promise<LoadResult>): Promise<WarmupFigures> {
  const before = usage(server);
  const load = await run();
  const f = figures(load, load.okReadings / Math.max(1, load.okRequests), before, usage(server), server);
  const part = { readings: f.okReadings, seconds: f.elapsedS, readingsPerS: f.readingsPerS, cpuSPerMillion: f.cpuSPerMillion };
  console.log(`  warm-up: ${Math.round(part.readingsPerS).toLocaleString('en-US')} readings/s, server CPU ${part.cpuSPerMillion?.toFixed(2) ?? '?'} s/M`);
  return part;
}

function line(label: string, f: Omit<WorkloadFigures, 'sums'>): void {
  console.log(
    `  ${label}: ${Math.round(f.readingsPerS).toLocaleString('en-US')} readings/s, ${Math.round(f.requestsPerS).toLocaleString('en-US')} req/s, ` +
      `p50 ${f.p50Ms.toFixed(2)} ms, p99 ${f.p99Ms.toFixed(2)} ms, server CPU ${f.serverCpuS?.toFixed(1) ?? '?'} s ` +
      `(${f.cpuSPerMillion?.toFixed(2) ?? '?'} s/M), disk writes ${f.diskMiBPerMillion?.toFixed(0) ?? '?'} MiB/M, peak RSS ${f.peakRssMiB?.toFixed(0) ?? '?'} MiB, ` +
      `non-2xx ${f.non2xx}, errors ${f.errors}, load generator CPU ${f.clientCpuS.toFixed(1)} s${f.ranOut ? ' (ran out of bodies)' : ''}`,
  );
}

async function withServer<T>(system: System, phase: string, fn: (server: Server, dir: string) => Promise<T>): Promise<T> {
  const dir = freshDir(system.id, phase);
  try {
    const server = await system.start(dir);
    try {
      await system.prepare(server);
      return await fn(server, dir);
    } finally {
      await server.proc.stop();
    }
  } finally {
    dropDir(dir);
  }
}

async function bulkAndDuplicates(system: System, w: Workloads, result: SystemResult): Promise<void> {
  const bodies = w.bodies[system.format];
  await withServer(system, 'bulk', async (server) => {
    const ledger = new Ledger(bodies.bulk);
    const common = { url: server.url, path: system.writePath, contentType: system.contentType, connections: options.bulkConnections, readingsIn: readingsIn(w.bulk) };
    const warmup: WarmupFigures[] = [];
    for (let done = 0; done < options.bulkWarmupSteps; done += options.bulkWarmupPartSteps) {
      const maxBodies = Math.min(options.bulkWarmupPartSteps, options.bulkWarmupSteps - done);
      warmup.push(await timedWarmup(server, () => runLoad(ledger, { ...common, maxBodies, maxSeconds: BULK_MAX_SECONDS })));
    }
    const before = usage(server);
    const load = await runLoad(ledger, { ...common, maxBodies: options.bulkSteps, maxSeconds: BULK_MAX_SECONDS });
    const f = { ...figures(load, options.devices, before, usage(server), server), warmup };
    line('bulk', f);
    await system.makeVisible(server);
    const sums = checkSums(w.bulk, options.devices, ledger.acked, ledger.sent, await system.sums(server, w.ids));
    console.log(`  bulk sums: ${sums.exact ? 'exact' : `WRONG on ${sums.wrongDevices} devices`} (stored ${sums.storedTotal}, acknowledged ${sums.acknowledgedTotal}, unanswered ${sums.unansweredTotal})`);
    result.bulk = { ...f, sums };

    const resent = new Ledger(bodies.duplicates);
    const dup = await runLoad(resent, { ...common, readingsIn: readingsIn(w.duplicates), maxBodies: w.duplicates.bodies, maxSeconds: BULK_MAX_SECONDS });
    await system.makeVisible(server);
    const stored = await system.sums(server, w.ids);
    const verdict = classifyDuplicates(expectations(w.bulk, ledger.acked, w.duplicates, resent.acked, options.devices), stored);
    result.duplicates = { resentReadings: w.duplicates.readings, requests: dup.sent, okRequests: dup.okRequests, verdict };
    console.log(
      `  duplicates: ${w.duplicates.readings} readings resent in ${dup.sent} requests (${dup.okRequests} acknowledged): ${verdict.semantics} ` +
        `(devices matching keep-first ${verdict.matching['keep-first']}, overwrite ${verdict.matching.overwrite}, double-count ${verdict.matching['double-count']} of ${verdict.devices})`,
    );
  });
}

async function single(system: System, w: Workloads, result: SystemResult): Promise<void> {
  const bodies = w.bodies[system.format];
  await withServer(system, 'single', async (server) => {
    const ledger = new Ledger(bodies.single);
    const common = { url: server.url, path: system.writePath, contentType: system.contentType, connections: options.singleConnections, readingsIn: () => 1 };
    const warmup = [await timedWarmup(server, () => runLoad(ledger, { ...common, maxBodies: bodies.single.count, maxSeconds: options.singleWarmupSeconds }))];
    const before = usage(server);
    const load = await runLoad(ledger, { ...common, maxBodies: bodies.single.count, maxSeconds: options.singleSeconds });
    const f = { ...figures(load, 1, before, usage(server), server), warmup };
    line('single', f);
    await sleep(200); // let requests cut off at the end of the run finish before reading back
    await system.makeVisible(server);
    const sums = checkSums(w.single, options.devices, ledger.acked, ledger.sent, await system.sums(server, w.ids));
    console.log(`  single sums: ${sums.exact ? 'exact' : `WRONG on ${sums.wrongDevices} devices`} (stored ${sums.storedTotal}, acknowledged ${sums.acknowledgedTotal}, unanswered ${sums.unansweredTotal})`);
    result.single = { ...f, sums };
  });
}

async function crash(system: System, w: Workloads, result: SystemResult): Promise<void> {
  const bodies = w.bodies[system.format];
  const dir = freshDir(system.id, 'crash');
  try {
    const first = await system.start(dir);
    let sentAtKill = -1;
    let killedAfterS = 0;
    try {
      await system.prepare(first);
      const ledger = new Ledger(bodies.crash);
      let timer: NodeJS.Timeout | undefined;
      const startedAt = performance.now();
      await runLoad(ledger, {
        url: first.url,
        path: system.writePath,
        contentType: system.contentType,
        connections: options.singleConnections,
        readingsIn: () => 1,
        maxBodies: bodies.crash.count,
        maxSeconds: options.crashSeconds,
        timeoutS: 5,
        onStart: (instance) => {
          timer = setTimeout(() => {
            killedAfterS = (performance.now() - startedAt) / 1000;
            void first.proc.kill9().then(() => {
              // Every body handed out from here on met a dead server.
              sentAtKill = ledger.next;
              instance.stop();
            });
          }, options.crashKillAfterSeconds * 1000);
        },
      });
      clearTimeout(timer);
      if (sentAtKill < 0) throw new Error(`the load ended before the kill (${ledger.sent} bodies sent)`);
      const acknowledgedAtKill = ledger.ackedBodies();
      const second = await system.start(dir);
      try {
        await system.makeVisible(second);
        const check = checkCrash(w.crash, ledger.acked, sentAtKill, await system.keys(second, w.ids));
        const crashResult: CrashResult = { ...check, connections: options.singleConnections, killedAfterS, restartS: second.readyS };
        result.crash = crashResult;
        console.log(
          `  crash: kill -9 after ${killedAfterS.toFixed(1)} s; ${check.acknowledged} acknowledged (${acknowledgedAtKill} bodies), ` +
            `${check.lost} lost, ${check.storedUnacknowledged} unacknowledged but stored, ${check.unexpected} unexpected; restart took ${second.readyS.toFixed(1)} s`,
        );
      } finally {
        await second.proc.stop();
      }
    } finally {
      await first.proc.stop();
    }
  } finally {
    dropDir(dir);
  }
}

const PHASES: readonly [key: string, name: string, run: (s: System, w: Workloads, r: SystemResult) => Promise<void>][] = [
  ['bulk', 'bulk + duplicates', bulkAndDuplicates],
  ['single', 'single', single],
  ['crash', 'crash', crash],
];

/**
 * Runs each phase on every system before the next phase, and the timed ones (bulk, single)
 * `--passes` times with the systems in turn, so that the figures compared are taken a minute apart
 * at most: this VM's speed moves by tens of percent from one minute to the next, and the goals
 * compare the systems with each other (report.ts takes the median of side-by-side ratios).
 */
async function benchSystems(systems: readonly System[], w: Workloads): Promise<SystemResult[]> {
  const results = systems.map(
    (system): SystemResult => ({ system: system.id, label: system.label, version: system.version(), acknowledges: system.acknowledges, errors: [] }),
  );
  const wanted = new Set(flags.phases!.split(',').map((p) => p.trim()));
  for (const [key, name, phase] of PHASES) {
    if (!wanted.has(key)) continue;
    const passes = key === 'crash' ? 1 : options.passes;
    for (let pass = 1; pass <= passes; pass++) {
      for (const [i, system] of systems.entries()) {
        if (system.phases !== undefined && !system.phases.includes(key)) continue;
        const result = results[i]!;
        const of = passes > 1 ? ` (pass ${pass} of ${passes})` : '';
        console.log(`\n${system.label} ${result.version}, ${name}${of}: acknowledges ${system.acknowledges}`);
        try {
          await waitForOtherBench();
          await phase(system, w, result);
          if (passes > 1 && (key === 'bulk' || key === 'single')) {
            result.passes ??= { bulk: [], single: [], duplicates: [] };
            result.passes[key].push(result[key]!);
            if (key === 'bulk' && result.duplicates !== undefined) result.passes.duplicates.push(result.duplicates);
          }
        } catch (err) {
          const message = (err as Error).message;
          console.error(`  ${name}${of} failed: ${message}`);
          result.errors.push(`${name}${of}: ${message}`);
        }
      }
    }
  }
  for (const result of results) representPasses(result);
  return results;
}

/**
 * After several passes, a system's `bulk` and `single` become its median pass by throughput, or
 * the first pass whose sums were wrong, and its duplicate verdict the first other than keep first:
 * a wrong answer in any pass shows.
 */
function representPasses(result: SystemResult): void {
  if (result.passes === undefined) return;
  for (const key of ['bulk', 'single'] as const) {
    const passes = result.passes[key];
    if (passes.length === 0) continue;
    const wrong = passes.find((f) => f.sums?.exact === false);
    const byRate = [...passes].sort((a, b) => a.readingsPerS - b.readingsPerS);
    result[key] = wrong ?? byRate[(byRate.length - 1) >> 1]!;
  }
  const verdicts = result.passes.duplicates;
  if (verdicts.length > 0) result.duplicates = verdicts.find((v) => v.verdict.semantics !== 'keep-first') ?? verdicts[0]!;
}

/** The reads workload, `--passes` times, each pass on fresh data dirs; a table per pass and a JSON of them all. */
async function readsPhase(systems: readonly System[]): Promise<void> {
  const tallySystem = systems.find((s) => s.id === 'tally');
  const influx = systems.find((s) => s.id === 'influxdb');
  if (tallySystem === undefined || influx === undefined) throw new Error('--phases reads needs Tally and InfluxDB');
  const [fleetDevices, fleetReadings] = (flags['reads-fleet'] ?? (quick ? '100x1000' : '1000x2000')).split('x').map(Number) as [number, number];
  const o = {
    big: num(flags['reads-big'], 100_000, 1_000_000),
    fleetDevices,
    fleetReadings,
    rounds: Number(flags['reads-rounds']),
    dataRoot: flags['data-root']!,
    settleSeconds: 20,
  };
  console.log(`reads: ${o.big} readings of one device + ${fleetDevices}x${fleetReadings} fleet; ${tallySystem.label} ${tallySystem.version()}, ${influx.label} ${influx.version()}; ${o.rounds} rounds each, medians`);
  const passes: ReadsRow[][] = [];
  for (let pass = 1; pass <= options.passes; pass++) {
    await waitForOtherBench();
    console.log(`\npass ${pass} of ${options.passes}`);
    const rows = await readsWorkload(tallySystem, influx, o);
    console.log(readsTable(rows));
    passes.push(rows);
  }
  const file = join(outDir, `${prefix}-reads.json`);
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), options: o, passes }, null, 2)}\n`);
  console.log(`wrote ${file}`);
}

async function main(): Promise<void> {
  if (flags['report-only'] !== undefined) {
    const saved = JSON.parse(readFileSync(flags['report-only'], 'utf8')) as PeersResults;
    for (const file of await writeReport(saved, outDir, prefix)) console.log(`wrote ${file}`);
    return;
  }
  const wanted = flags.systems!.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const id of wanted) if (!SYSTEM_IDS.includes(id as SystemId)) throw new Error(`--systems: unknown system ${id}; known: ${SYSTEM_IDS.join(', ')}`);
  const tallyNodeArgs = flags['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', resolve(flags['cpu-prof'])];
  const all = [tally({ nodeArgs: tallyNodeArgs }), tallyLineProtocol({ nodeArgs: tallyNodeArgs }), influxdb(), victoriaMetrics()].filter((s) => wanted.includes(s.id));
  const skipped: { system: SystemId; reason: string }[] = [];
  const systems = all.filter((s) => {
    const missing = s.missing();
    if (missing !== undefined) {
      console.warn(`skipping ${s.label}: ${missing}`);
      skipped.push({ system: s.id, reason: missing });
    }
    return missing === undefined;
  });
  if (systems.length === 0) throw new Error('nothing to benchmark');

  const host = machine();
  console.log(`machine: ${host.cpu}, ${host.cores} cores, ${host.memoryGiB} GiB, ${host.os}, node ${host.node}, data on ${host.filesystem}`);
  if (flags.phases!.split(',').some((p) => p.trim() === 'reads')) {
    await readsPhase(systems);
    return;
  }
  const w = makeWorkloads(new Set(systems.map((s) => s.format)));

  const results = await benchSystems(systems, w);

  const autocannonVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules/autocannon/package.json'), 'utf8')) as { version: string }).version;
  const report: PeersResults = {
    date: new Date().toISOString(),
    quick,
    machine: host,
    options,
    loadGenerator: `autocannon ${autocannonVersion} in the bench process`,
    skipped,
    systems: results,
  };
  console.log(`\n${renderTables(report)}`);
  for (const file of await writeReport(report, outDir, prefix)) console.log(`wrote ${file}`);

  const tallyResult = results.find((r) => r.system === 'tally');
  if (tallyResult !== undefined) {
    const broken = tallyResult.errors.length > 0 || goals(report).some((g) => g.pass === false && (g.name.startsWith('durable') || g.name.startsWith('exact')));
    if (broken) {
      console.error('FAIL: Tally lost acknowledged readings, stored wrong sums, or a phase failed');
      process.exitCode = 1;
    }
  }
}

await main();
