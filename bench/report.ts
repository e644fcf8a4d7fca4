/** Figures of one load run, the checks on them, and how they are printed. */
import { cpus, loadavg, release, totalmem } from 'node:os';
import type autocannon from 'autocannon';
import type { CpuShare } from './cpu.js';

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly os: string;
  /** 1-minute load average when the bench started: the machine is shared. */
  readonly loadAverage: number;
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    os: `${process.platform} ${release()}`,
    loadAverage: Math.round(loadavg()[0]! * 100) / 100,
  };
}

export interface RunFigures {
  readonly server: string;
  readonly scenario: string;
  readonly connections: number;
  readonly durationS: number;
  /** 2xx responses per second. */
  readonly requestsPerS: number;
  /** Readings in 2xx responses per second. */
  readonly readingsPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  /** Connection errors and timeouts. */
  readonly errors: number;
  readonly peakRssMiB: number | null;
  /** Share of the machine's CPU time during the measured run, by whom. */
  readonly cpu: CpuShare | null;
}

export function figures(
  server: string,
  scenario: string,
  readingsPerRequest: number,
  { result, cpu }: { result: autocannon.Result; cpu: CpuShare | null },
  peakRssBytes: number | undefined,
): RunFigures {
  const ok = result['2xx'];
  return {
    server,
    scenario,
    connections: result.connections,
    durationS: result.duration,
    requestsPerS: ok / result.duration,
    readingsPerS: (ok * readingsPerRequest) / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    peakRssMiB: peakRssBytes === undefined ? null : peakRssBytes / 1024 ** 2,
    cpu,
  };
}

/** What Tally stored against what it acknowledged, after one run. */
/** Every figure is a sum of reading counts, the quantity cumulative-count reports. */
export interface CountCheck {
  readonly scenario: string;
  /** Sum of counts over the bodies acknowledged during the run. */
  readonly acknowledged: number;
  /** Requests sent without a 2xx (in flight when the load stopped, refused, timed out)... */
  readonly unansweredRequests: number;
  /** ...and the sum of their counts. */
  readonly unanswered: number;
  /** Sum of cumulative-count over the devices, right after the run. */
  readonly storedAfterRun: number;
  /** Sum of counts over every body once the unanswered ones were retried and acknowledged. */
  readonly acknowledgedAfterRetry: number;
  readonly storedAfterRetry: number;
  /** acknowledged <= storedAfterRun <= acknowledged + unanswered, and storedAfterRetry == acknowledgedAfterRetry. */
  readonly pass: boolean;
}

export interface Target {
  readonly name: string;
  readonly value: number;
  readonly goal: string;
  readonly pass: boolean;
}

export function targets(single: [RunFigures, RunFigures], batch: [RunFigures, RunFigures]): Target[] {
  const [singleTally, singleBare] = single;
  const [batchTally, batchBare] = batch;
  const singleRatio = singleTally.requestsPerS / singleBare.requestsPerS;
  const batchRatio = batchTally.readingsPerS / batchBare.readingsPerS;
  return [
    { name: 'single: Tally req/s ÷ bare req/s', value: singleRatio, goal: '>= 0.80', pass: singleRatio >= 0.8 },
    { name: 'single: Tally p99 (ms)', value: singleTally.p99Ms, goal: '< 30', pass: singleTally.p99Ms < 30 },
    { name: 'batch: Tally readings/s ÷ bare readings/s', value: batchRatio, goal: '>= 0.40', pass: batchRatio >= 0.4 },
  ];
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');

export function printMachine(m: Machine): void {
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, node ${m.node}; load average ${m.loadAverage}`);
}

export function printFigures(rows: readonly RunFigures[]): void {
  const header = ['scenario', 'server', 'conns', 'req/s', 'readings/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'peak RSS MiB', 'CPU % server/loadgen/other'];
  const lines = rows.map((r) => [
    r.scenario,
    r.server,
    String(r.connections),
    int(r.requestsPerS),
    int(r.readingsPerS),
    r.p50Ms.toFixed(1),
    r.p99Ms.toFixed(1),
    String(r.non2xx),
    String(r.errors),
    r.peakRssMiB === null ? '-' : r.peakRssMiB.toFixed(0),
    r.cpu === null ? '-' : `${r.cpu.serverPct.toFixed(0)}/${r.cpu.loadGeneratorPct.toFixed(0)}/${r.cpu.otherPct.toFixed(0)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const line of [header, ...lines]) console.log(line.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
}

export function printCheck(c: CountCheck): void {
  console.log(
    `count check (${c.scenario}): ${c.pass ? 'PASS' : 'FAIL'}  sum of counts acknowledged ${int(c.acknowledged)} ` +
      `(+${int(c.unanswered)} in ${c.unansweredRequests} unanswered requests), stored ${int(c.storedAfterRun)}; ` +
      `after retrying those: acknowledged ${int(c.acknowledgedAfterRetry)}, stored ${int(c.storedAfterRetry)}`,
  );
}

export function printTargets(list: readonly Target[]): void {
  for (const t of list) console.log(`target ${t.pass ? 'PASS' : 'FAIL'}  ${t.name} = ${t.value.toFixed(2)} (goal ${t.goal})`);
}
