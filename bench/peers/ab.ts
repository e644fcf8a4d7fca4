/**
 * A/B of servers kept running side by side: short timed rounds taking turns (A, B, A, B, ...), so
 * that a slow minute of this VM lands on every server, and a median of the ratios of rounds run next
 * to each other. For checking a change of Tally against the previous build (a git worktree's
 * dist), or against InfluxDB, on a server that has been running rather than one just started.
 *
 *   node --import tsx bench/peers/ab.ts [--workload bulk|single] [--rounds 14] [--seconds 1.5] [--skip 4] \
 *     'base=node /tmp/wt-base/dist/app/cli.js serve' 'new=node dist/app/cli.js serve' [@influxdb] [@victoria-metrics]
 *
 * A server is `name=command`, run from the repository root with bench:peers' Tally settings
 * (TALLY_SYNCHRONOUS=FULL) and TALLY_PORT (and BARE_PORT, for bench/bare-server.ts), TALLY_HOST,
 * TALLY_DATA_DIR (fresh) set (`env X=Y node ...` overrides), and timed once /api/ping answers; or
 * `@influxdb` / `@victoria-metrics`. The first server is the base of the ratios; the first `--skip` rounds are warm-up, left out.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, diskWriteBytes, startPingServer } from '../proc.js';
import { median } from '../report.js';
import { Ledger, runLoad } from './load.js';
import { influxdb, tallySettings, victoriaMetrics } from './systems.js';
import { bulkPlan, deviceIds, readingsIn, render, singlePlan, type Bodies } from './workload.js';

const { values: flags, positionals: specs } = parseArgs({
  options: {
    workload: { type: 'string', default: 'bulk' },
    rounds: { type: 'string', default: '14' },
    seconds: { type: 'string' },
    skip: { type: 'string', default: '4' },
  },
  allowPositionals: true,
});
const bulk = flags.workload === 'bulk';
if (!bulk && flags.workload !== 'single') throw new Error('--workload: bulk or single');
const rounds = Number(flags.rounds);
const seconds = Number(flags.seconds ?? (bulk ? 1.5 : 3));
const skip = Number(flags.skip);
if (specs.length === 0) throw new Error('name at least one server: name=command, @influxdb or @victoria-metrics');

const DEVICES = 1000;
const ids = deviceIds(DEVICES);
// Enough bodies for every round above the fastest rates seen here (bulk ~1 M readings/s, single ~25 k requests/s).
const plan = bulk ? bulkPlan(1, DEVICES, Math.ceil(rounds * seconds * 1200)) : singlePlan(1, DEVICES, Math.ceil(rounds * seconds * 50_000));
const bodies: Partial<Record<'json' | 'line', Bodies>> = {};
const bodiesIn = (format: 'json' | 'line') => (bodies[format] ??= render(plan, format, ids));

interface Contender {
  readonly name: string;
  readonly pid: number;
  readonly url: string;
  readonly path: string;
  readonly contentType: string;
  readonly ledger: Ledger;
  readonly rates: number[];
  /** CPU seconds when the rounds began, and readings acknowledged in all rounds. */
  cpuStart: number;
  readings: number;
  readonly stop: () => Promise<void> | void;
}

/** Waits until the process uses under 2 % of a core over a second (at most 60 s): its background work is done. */
async function quiet(pid: number): Promise<void> {
  for (let waited = 0; waited < 60; waited++) {
    const before = cpuSeconds(pid) ?? NaN;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (!((cpuSeconds(pid) ?? NaN) - before >= 0.02)) return;
  }
}

const dirs: string[] = [];
const contenders: Contender[] = [];
for (const spec of specs) {
  const dir = mkdtempSync(join(tmpdir(), 'tally-ab-'));
  dirs.push(dir);
  if (spec.startsWith('@')) {
    const system = spec === '@influxdb' ? influxdb() : spec === '@victoria-metrics' ? victoriaMetrics() : undefined;
    if (system === undefined) throw new Error(`unknown peer ${spec}`);
    const missing = system.missing();
    if (missing !== undefined) throw new Error(`${system.label}: ${missing}`);
    const server = await system.start(dir);
    await system.prepare(server);
    const ledger = new Ledger(bodiesIn(system.format));
    contenders.push({ name: system.id, pid: server.proc.pid, url: server.url, path: system.writePath, contentType: system.contentType, ledger, rates: [], cpuStart: NaN, readings: 0, stop: () => server.proc.stop() });
    continue;
  }
  const eq = spec.indexOf('=');
  if (eq < 1) throw new Error(`expected name=command, got ${spec}`);
  const name = spec.slice(0, eq);
  const [command, ...args] = spec.slice(eq + 1).split(' ').filter((a) => a !== '');
  const { url, proc } = await startPingServer(name, command!, args, { ...tallySettings(), TALLY_DATA_DIR: dir, TALLY_LOG_LEVEL: 'warn' });
  const ledger = new Ledger(bodiesIn('json'));
  contenders.push({ name, pid: proc.pid, url, path: '/v1/readings?precision=s', contentType: 'application/json', ledger, rates: [], cpuStart: NaN, readings: 0, stop: () => proc.stop() });
}

const unit = bulk ? 'readings/s' : 'requests/s';
console.log(`${flags.workload}: ${rounds} rounds of ${seconds} s, ${bulk ? 8 : 64} connections; per server: ${unit}, server CPU µs per reading, p50/p99 ms, bytes written per reading`);
try {
  for (const c of contenders) c.cpuStart = cpuSeconds(c.pid) ?? NaN;
  for (let round = 0; round < rounds; round++) {
    const line: string[] = [];
    for (const c of contenders) {
      const cpu0 = cpuSeconds(c.pid) ?? NaN;
      const disk0 = diskWriteBytes(c.pid) ?? NaN;
      const load = await runLoad(c.ledger, {
        url: c.url,
        path: c.path,
        contentType: c.contentType,
        connections: bulk ? 8 : 64,
        maxBodies: Number.MAX_SAFE_INTEGER,
        maxSeconds: seconds,
        readingsIn: readingsIn(plan),
      });
      const cpuUs = (((cpuSeconds(c.pid) ?? NaN) - cpu0) / load.okReadings) * 1e6;
      const bytes = ((diskWriteBytes(c.pid) ?? NaN) - disk0) / load.okReadings;
      c.rates.push(load.readingsPerS);
      c.readings += load.okReadings;
      const failed = load.non2xx + load.errors > 0 ? ` FAILED ${load.non2xx + load.errors}` : '';
      line.push(`${c.name} ${Math.round(load.readingsPerS)} ${cpuUs.toFixed(2)}µs ${load.p50Ms.toFixed(1)}/${load.p99Ms.toFixed(0)}ms ${bytes.toFixed(0)}B${failed}`);
    }
    console.log(`${round < skip ? 'warm-up ' : ''}${line.join('  |  ')}`);
  }
  const base = contenders[0]!;
  for (const c of contenders) {
    const kept = c.rates.slice(skip);
    const ratios = kept.map((rate, k) => rate / base.rates[skip + k]!);
    console.log(`${c.name}: median ${Math.round(median(kept))} ${unit}; ÷ ${base.name}: median ${median(ratios).toFixed(2)} (${ratios.map((r) => r.toFixed(2)).join(' ')})`);
  }
  // A round's CPU leaves out what a server does between its rounds (compaction, sealing, settling
  // while another server runs): the whole run's CPU, once every server has gone quiet, counts it.
  for (const c of contenders) await quiet(c.pid);
  const whole = contenders.map((c) => `${c.name} ${((((cpuSeconds(c.pid) ?? NaN) - c.cpuStart) / c.readings) * 1e6).toFixed(2)}µs`);
  console.log(`whole run, server CPU per reading acknowledged, work between rounds included (after going quiet): ${whole.join('  |  ')}`);
} finally {
  for (const c of contenders) await c.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
