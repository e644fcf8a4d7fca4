/** Figures of one load run, the checks on them, and how they are printed. */
import { cpus, loadavg, release, totalmem } from 'node:os';
import type autocannon from 'autocannon';
import type { CommitRates } from './commits.js';
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

/** CPU model, cores, memory and Node.js version: what every bench reports of its machine. */
export function hardware(): Pick<Machine, 'cpu' | 'cores' | 'memoryGiB' | 'node'> {
  const list = cpus();
  return {
    cpu: list[0]?.model ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
  };
}

export function machine(): Machine {
  return { ...hardware(), os: `${process.platform} ${release()}`, loadAverage: Math.round(loadavg()[0]! * 100) / 100 };
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
  /** Tally's group commits during the run (from its /metrics). */
  readonly commits?: CommitRates;
}

export function figures(
  server: string,
  scenario: string,
  readingsPerRequest: number,
  { result, cpu, commits }: { result: autocannon.Result; cpu: CpuShare | null; commits?: CommitRates },
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
    ...(commits === undefined ? {} : { commits }),
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
  /**
   * Where answers carry `accepted` (/v1), the same check on numbers of readings (sum of
   * reading_count), plus the sum of `accepted` over the 2xx answers, which can never exceed what is
   * stored (and falls short of it by the readings of requests whose answers were lost when the load
   * stopped: stored by Tally, then a duplicate when retried).
   */
  readonly readings?: {
    readonly acknowledged: number;
    readonly acceptedInRun: number;
    readonly storedAfterRun: number;
    readonly acknowledgedAfterRetry: number;
    readonly acceptedAfterRetry: number;
    readonly storedAfterRetry: number;
  };
  /** acknowledged <= storedAfterRun <= acknowledged + unanswered, and storedAfterRetry == acknowledgedAfterRetry. */
  readonly pass: boolean;
}

export interface Target {
  readonly name: string;
  readonly value: number;
  readonly goal: string;
  readonly pass: boolean;
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The targets of the scenarios that ran, from their [tally, bare] pairs: medians of the pairs' ratios and of Tally's p99s. */
export function targets(single?: ReadonlyArray<[RunFigures, RunFigures]>, batch?: ReadonlyArray<[RunFigures, RunFigures]>): Target[] {
  const list: Target[] = [];
  const ratios = (pairs: ReadonlyArray<[RunFigures, RunFigures]>, of: (r: RunFigures) => number) =>
    pairs.map(([tally, bare]) => of(tally) / of(bare));
  const each = (values: readonly number[]) => (values.length > 1 ? ` (median of ${values.map((v) => v.toFixed(2)).join(', ')})` : '');
  if (single !== undefined && single.length > 0) {
    const singleRatios = ratios(single, (r) => r.requestsPerS);
    const singleRatio = median(singleRatios);
    list.push({ name: `single: Tally req/s ÷ bare req/s${each(singleRatios)}`, value: singleRatio, goal: '>= 0.80', pass: singleRatio >= 0.8 });
    const p99s = single.map(([tally]) => tally.p99Ms);
    const p99 = median(p99s);
    list.push({ name: `single: Tally p99 (ms)${each(p99s)}`, value: p99, goal: '< 30', pass: p99 < 30 });
  }
  if (batch !== undefined && batch.length > 0) {
    const batchRatios = ratios(batch, (r) => r.readingsPerS);
    const batchRatio = median(batchRatios);
    list.push({ name: `batch: Tally readings/s ÷ bare readings/s${each(batchRatios)}`, value: batchRatio, goal: '>= 0.40', pass: batchRatio >= 0.4 });
  }
  return list;
}

/**
 * The PostgreSQL targets (issue 15): Tally ÷ the raw ceiling for 1,000-reading batches, from the
 * batch scenario's [tally, ceiling] pairs, and two nodes ÷ one, from the two-nodes [two, one] pairs.
 */
export function pgTargets(batch?: ReadonlyArray<[RunFigures, RunFigures]>, twoNodes?: ReadonlyArray<[RunFigures, RunFigures]>): Target[] {
  const list: Target[] = [];
  const each = (values: readonly number[]) => (values.length > 1 ? ` (median of ${values.map((v) => v.toFixed(2)).join(', ')})` : '');
  const ratio = (name: string, pairs: ReadonlyArray<[RunFigures, RunFigures]> | undefined, goal: number) => {
    if (pairs === undefined || pairs.length === 0) return;
    const values = pairs.map(([a, b]) => a.readingsPerS / b.readingsPerS);
    const value = median(values);
    list.push({ name: `${name}${each(values)}`, value, goal: `>= ${goal.toFixed(2)}`, pass: value >= goal });
  };
  ratio('batch: Tally readings/s ÷ PostgreSQL ceiling readings/s', batch, 0.8);
  ratio('two-nodes: two Tally nodes readings/s ÷ one node readings/s', twoNodes, 1);
  return list;
}

/**
 * One result of several autocannon runs side by side (one per node): their 2xx, errors and
 * connections added up over the longest duration; p50 the 2xx-weighted mean of theirs, p99 the worst.
 */
export function mergeResults(results: readonly autocannon.Result[]): autocannon.Result {
  const ok = results.reduce((n, r) => n + r['2xx'], 0);
  const sum = (of: (r: autocannon.Result) => number) => results.reduce((n, r) => n + of(r), 0);
  return {
    ...results[0]!,
    '2xx': ok,
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    connections: sum((r) => r.connections),
    duration: Math.max(...results.map((r) => r.duration)),
    latency: {
      ...results[0]!.latency,
      p50: ok === 0 ? 0 : sum((r) => r.latency.p50 * r['2xx']) / ok,
      p99: Math.max(...results.map((r) => r.latency.p99)),
    },
  };
}

/** `passes` sequential full listings of GET /v1/devices, following next_cursor. */
export interface PagingRun {
  readonly listing: string;
  readonly passes: number;
  readonly pages: number;
  readonly items: number;
  readonly pagesPerS: number;
  readonly devicesPerS: number;
  /** Per page, request sent to JSON parsed by the client. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Distinct devices seen in each pass. */
  readonly distinct: readonly number[];
  readonly ordered: boolean;
  /** Every pass saw each loaded device exactly once, in the listing's order. */
  readonly pass: boolean;
  readonly cpu: CpuShare | null;
}

/** Concurrent first-page queries. */
export interface MixRun {
  readonly query: string;
  readonly connections: number;
  readonly durationS: number;
  readonly queriesPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly cpu: CpuShare | null;
}

export interface DevicesRun {
  readonly devices: number;
  /** Seconds to load the devices (untimed setup). */
  readonly loadS: number;
  readonly paging: readonly PagingRun[];
  /** Every prefix listing held exactly the loaded devices with that prefix. */
  readonly prefixCheck: boolean;
  readonly mix: MixRun;
  readonly peakRssMiB: number | null;
  readonly pass: boolean;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const cpuCell = (cpu: CpuShare | null) => (cpu === null ? '-' : `${cpu.serverPct.toFixed(0)}/${cpu.loadGeneratorPct.toFixed(0)}/${cpu.otherPct.toFixed(0)}`);

function printTable(header: readonly string[], lines: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const line of [header, ...lines]) console.log(line.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
}

export function printMachine(m: Machine): void {
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, node ${m.node}; load average ${m.loadAverage}`);
}

export function printFigures(rows: readonly RunFigures[]): void {
  const header = ['scenario', 'server', 'conns', 'req/s', 'readings/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'peak RSS MiB', 'CPU % server/loadgen/other', 'commits/s x readings, ms'];
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
    cpuCell(r.cpu),
    r.commits === undefined ? '-' : `${r.commits.commitsPerS.toFixed(0)} x ${int(r.commits.readingsPerCommit)}, ${r.commits.meanMs.toFixed(1)}`,
  ]);
  printTable(header, lines);
}

export function printDevices(d: DevicesRun): void {
  printTable(
    ['GET /v1/devices, limit=1000', 'passes', 'pages/s', 'devices/s', 'p50 ms', 'p99 ms', 'max ms', 'distinct per pass', 'CPU % server/loadgen/other'],
    d.paging.map((p) => [
      p.listing,
      String(p.passes),
      int(p.pagesPerS),
      int(p.devicesPerS),
      p.p50Ms.toFixed(1),
      p.p99Ms.toFixed(1),
      p.maxMs.toFixed(1),
      p.distinct.map(int).join(' '),
      cpuCell(p.cpu),
    ]),
  );
  const m = d.mix;
  printTable(
    ['GET /v1/devices, concurrent', 'conns', 'queries/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'CPU % server/loadgen/other'],
    [[m.query, String(m.connections), int(m.queriesPerS), m.p50Ms.toFixed(1), m.p99Ms.toFixed(1), String(m.non2xx), String(m.errors), cpuCell(m.cpu)]],
  );
  const failed = d.paging.filter((p) => !p.pass).map((p) => `${p.listing}${p.ordered ? '' : ' (out of order)'}`);
  console.log(
    `devices check: ${d.pass ? 'PASS' : 'FAIL'}  ${int(d.devices)} devices; every pass saw each exactly once in order: ` +
      `${failed.length === 0 ? 'yes' : `no (${failed.join(', ')})`}; prefix listings exact: ${d.prefixCheck ? 'yes' : 'no'}; ` +
      `peak RSS ${d.peakRssMiB === null ? '-' : d.peakRssMiB.toFixed(0)} MiB`,
  );
}

export function printCheck(c: CountCheck): void {
  console.log(
    `count check (${c.scenario}): ${c.pass ? 'PASS' : 'FAIL'}  sum of counts acknowledged ${int(c.acknowledged)} ` +
      `(+${int(c.unanswered)} in ${c.unansweredRequests} unanswered requests), stored ${int(c.storedAfterRun)}; ` +
      `after retrying those: acknowledged ${int(c.acknowledgedAfterRetry)}, stored ${int(c.storedAfterRetry)}` +
      (c.readings === undefined
        ? ''
        : `; readings acknowledged ${int(c.readings.acknowledged)} (sum of accepted ${int(c.readings.acceptedInRun)}), ` +
          `stored ${int(c.readings.storedAfterRun)}; after retrying: acknowledged ${int(c.readings.acknowledgedAfterRetry)} ` +
          `(sum of accepted ${int(c.readings.acceptedAfterRetry)}), stored ${int(c.readings.storedAfterRetry)}`),
  );
}

export function printTargets(list: readonly Target[]): void {
  for (const t of list) console.log(`target ${t.pass ? 'PASS' : 'FAIL'}  ${t.name} = ${t.value.toFixed(2)} (goal ${t.goal})`);
}
