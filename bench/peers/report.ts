/**
 * The results file of `npm run bench:peers` and what is rendered from it: the Markdown tables, the
 * section for BENCHMARKS.md, and SVG charts (vega-lite compiled to vega, rendered headless).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { median } from '../report.js';
import type { CrashCheck, DuplicatesVerdict, SumCheck } from './correctness.js';
import type { LoadResult } from './load.js';
import type { SystemId } from './systems.js';

/** A workload's load figures (as the load generator measured them) plus what the server used. */
export interface WorkloadFigures extends LoadResult {
  readonly readingsPerRequest: number;
  /** Server user + system CPU seconds during the timed part (/proc/<pid>/stat). */
  readonly serverCpuS: number | null;
  readonly cpuSPerMillion: number | null;
  /** Bytes the server wrote to storage during the timed part (/proc/<pid>/io write_bytes), MiB per million readings. */
  readonly diskMiBPerMillion: number | null;
  /** Server VmHWM at the end of the workload. */
  readonly peakRssMiB: number | null;
  /** Stored sums against acknowledged ones, read back after the run (warm-up included). */
  readonly sums: SumCheck | null;
  /** The warm-up before the timed part, in order from the server's start (absent in older files). */
  readonly warmup?: readonly WarmupFigures[];
}

/** One part of a warm-up: what a fresh server did before its figures were timed. */
export interface WarmupFigures {
  readonly readings: number;
  readonly seconds: number;
  readonly readingsPerS: number;
  readonly cpuSPerMillion: number | null;
}

export interface DuplicatesResult {
  readonly resentReadings: number;
  readonly requests: number;
  readonly okRequests: number;
  readonly verdict: DuplicatesVerdict;
}

export interface CrashResult extends CrashCheck {
  readonly connections: number;
  /** Seconds of load before the kill -9. */
  readonly killedAfterS: number;
  /** Seconds from the restart until the server answered its health check. */
  readonly restartS: number;
}

export interface SystemResult {
  readonly system: SystemId;
  readonly label: string;
  readonly version: string;
  readonly acknowledges: string;
  bulk?: WorkloadFigures;
  duplicates?: DuplicatesResult;
  single?: WorkloadFigures;
  crash?: CrashResult;
  /**
   * Every pass of the timed workloads, in order, when there were several (`--passes`): `bulk` and
   * `single` above are then the pass with the median figure, or a pass whose sums were wrong, and
   * `duplicates` the first verdict other than keep first, if any.
   */
  passes?: { bulk: WorkloadFigures[]; single: WorkloadFigures[]; duplicates: DuplicatesResult[] };
  readonly errors: string[];
}

export interface PeersResults {
  readonly date: string;
  readonly quick: boolean;
  readonly machine: {
    readonly cpu: string;
    readonly cores: number;
    readonly memoryGiB: number;
    readonly os: string;
    readonly node: string;
    readonly filesystem: string;
  };
  readonly options: {
    readonly seed: number;
    readonly devices: number;
    readonly bulkSteps: number;
    readonly bulkWarmupSteps: number;
    readonly bulkConnections: number;
    readonly duplicateFraction: number;
    readonly singleSeconds: number;
    readonly singleWarmupSeconds: number;
    readonly singleConnections: number;
    readonly crashSeconds: number;
    readonly crashKillAfterSeconds: number;
    /** Passes of bulk and single per system, in alternation (absent in files written before it existed: 1). */
    readonly passes?: number;
    /** Steps per timed part of the bulk warm-up (absent in files written before it existed). */
    readonly bulkWarmupPartSteps?: number;
    readonly tally: Record<string, string>;
  };
  readonly loadGenerator: string;
  readonly skipped: readonly { readonly system: SystemId; readonly reason: string }[];
  readonly systems: readonly SystemResult[];
}

export interface Goal {
  readonly name: string;
  readonly value: string;
  readonly goal: string;
  readonly pass: boolean | null;
}

const find = (r: PeersResults, id: SystemId) => r.systems.find((s) => s.system === id);

/** The issue's goals for Tally, judged from the results (null when a figure is missing). */
export function goals(r: PeersResults): Goal[] {
  const t = find(r, 'tally');
  const i = find(r, 'influxdb');
  const v = find(r, 'victoria-metrics');
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? undefined : a / b);
  const bulk = pairedRatio(t, i, 'bulk', (f) => f.readingsPerS);
  const single = pairedRatio(t, i, 'single', (f) => f.requestsPerS);
  const out: Goal[] = [
    { name: 'bulk: Tally readings/s ÷ InfluxDB', value: ratioText(bulk), goal: '≥ 1.2×', pass: bulk === undefined ? null : bulk.median >= 1.2 },
    { name: 'single: Tally requests/s ÷ InfluxDB', value: ratioText(single), goal: '≥ 1.2×', pass: single === undefined ? null : single.median >= 1.2 },
  ];
  const lp = find(r, 'tally-lp');
  const lpBulk = pairedRatio(lp, t, 'bulk', (f) => f.readingsPerS);
  if (lp !== undefined) {
    out.push({ name: 'bulk: Tally line protocol (/write) readings/s ÷ Tally JSON (/v1)', value: ratioText(lpBulk), goal: '≥ 1.0×', pass: lpBulk === undefined ? null : lpBulk.median >= 1.0 });
  }
  const lost = t?.crash?.lost;
  out.push({ name: 'durable: Tally acknowledged readings lost in kill -9', value: lost === undefined ? 'n/a' : String(lost), goal: '0', pass: lost === undefined ? null : lost === 0 });
  const exactParts = [t?.bulk?.sums?.exact, t?.single?.sums?.exact, t?.duplicates === undefined ? undefined : t.duplicates.verdict.semantics === 'keep-first'];
  const known = exactParts.every((p) => p !== undefined);
  out.push({
    name: 'exact sums: Tally bulk and single sums exact, resent readings kept first',
    value: !known ? 'n/a' : exactParts.every(Boolean) ? 'exact' : 'wrong',
    goal: 'exact',
    pass: !known ? null : exactParts.every(Boolean),
  });
  if (lp !== undefined) {
    const lpParts = [lp.bulk?.sums?.exact, lp.duplicates === undefined ? undefined : lp.duplicates.verdict.semantics === 'keep-first'];
    const lpKnown = lpParts.every((p) => p !== undefined);
    out.push({
      name: 'exact sums: Tally line protocol bulk sums exact, resent readings kept first',
      value: !lpKnown ? 'n/a' : lpParts.every(Boolean) ? 'exact' : 'wrong',
      goal: 'exact',
      pass: !lpKnown ? null : lpParts.every(Boolean),
    });
  }
  const cold = pairedRatio(t, i, 'bulk', (f) => f.warmup?.[0]?.readingsPerS ?? NaN);
  if (cold !== undefined) {
    out.push({ name: 'for reference: bulk from a cold start (first warm-up part), Tally ÷ InfluxDB', value: ratioText(cold), goal: '–', pass: null });
  }
  const vb = ratio(t?.bulk?.readingsPerS, v?.bulk?.readingsPerS);
  const vs = ratio(t?.single?.requestsPerS, v?.single?.requestsPerS);
  if (vb !== undefined || vs !== undefined) {
    out.push({
      name: 'for reference: Tally ÷ VictoriaMetrics (bulk readings/s, single requests/s)',
      value: `${vb === undefined ? 'n/a' : `${vb.toFixed(2)}×`}, ${vs === undefined ? 'n/a' : `${vs.toFixed(2)}×`}`,
      goal: 'close in',
      pass: null,
    });
  }
  return out;
}

/**
 * Tally's figure over the peer's: with several passes, the median of the ratios of passes run side
 * by side (pass k of one against pass k of the other), so that a slow minute of the machine lands
 * on both sides of a ratio instead of on one system.
 */
function pairedRatio(
  a: SystemResult | undefined,
  b: SystemResult | undefined,
  workload: 'bulk' | 'single',
  metric: (f: WorkloadFigures) => number,
): { median: number; pairs: number[] } | undefined {
  const pa = a?.passes?.[workload];
  const pb = b?.passes?.[workload];
  const pairs =
    pa !== undefined && pb !== undefined && pa.length === pb.length && pa.length > 0
      ? pa.map((f, k) => metric(f) / metric(pb[k]!))
      : a?.[workload] !== undefined && b?.[workload] !== undefined
        ? [metric(a[workload]) / metric(b[workload])]
        : [];
  const finite = pairs.filter((r) => Number.isFinite(r));
  return finite.length === 0 ? undefined : { median: median(finite), pairs: finite };
}

function ratioText(r: { median: number; pairs: number[] } | undefined): string {
  if (r === undefined) return 'n/a';
  return r.pairs.length === 1 ? `${r.median.toFixed(2)}×` : `${r.median.toFixed(2)}× (median of ${r.pairs.map((x) => x.toFixed(2)).join(', ')})`;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));
const opt = (n: number | null, f: (n: number) => string) => (n === null ? '–' : f(n));

function sumsCell(s: SumCheck | null | undefined): string {
  if (s === null || s === undefined) return '–';
  if (s.exact) return `exact (${int(s.storedTotal)})`;
  return `**wrong** on ${s.wrongDevices} devices (stored ${int(s.storedTotal)}, acknowledged ${int(s.acknowledgedTotal)})`;
}

const SEMANTICS_TEXT: Record<string, string> = {
  'keep-first': 'keep first (sums exact)',
  overwrite: 'overwrite (last write wins)',
  'double-count': '**double count**',
  wrong: '**none fits**',
};

function duplicatesCell(d: DuplicatesResult | undefined): string {
  if (d === undefined) return '–';
  const v = d.verdict;
  const extra = v.storedTotal - v.expectedTotals['keep-first'];
  return `${SEMANTICS_TEXT[v.semantics]}${extra === 0 ? '' : `, ${extra > 0 ? '+' : ''}${int(extra)} vs first writes`}`;
}

function crashCell(c: CrashResult | undefined): string {
  if (c === undefined) return '–';
  const lost = c.lost === 0 ? '0 lost' : `**${int(c.lost)} lost**`;
  return `${int(c.acknowledged)} acknowledged, ${lost}`;
}

/** The Markdown tables: throughput and latency per workload, then correctness. */
export function renderTables(r: PeersResults): string {
  const perf: string[] = [
    '| System | Workload | readings/s | requests/s | p50 ms | p99 ms | server CPU s per M readings | disk writes MiB per M readings | server peak RSS MiB | non-2xx / errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of r.systems) {
    for (const [name, w] of [['bulk', s.bulk], ['single', s.single]] as const) {
      if (w === undefined) continue;
      perf.push(
        `| ${s.label} | ${name} | ${int(w.readingsPerS)} | ${int(w.requestsPerS)} | ${ms(w.p50Ms)} | ${ms(w.p99Ms)} | ` +
          `${opt(w.cpuSPerMillion, (n) => n.toFixed(2))} | ${opt(w.diskMiBPerMillion ?? null, (n) => n.toFixed(0))} | ` +
          `${opt(w.peakRssMiB, (n) => n.toFixed(0))} | ${w.non2xx} / ${w.errors} |`,
      );
    }
  }
  const warm: string[] = [
    '| System | Workload | warm-up from the start, in parts: readings/s (server CPU s per M readings) | timed readings/s |',
    '|---|---|---|---:|',
  ];
  for (const s of r.systems) {
    for (const [name, w] of [['bulk', s.bulk], ['single', s.single]] as const) {
      if (w?.warmup === undefined || w.warmup.length === 0) continue;
      const parts = w.warmup.map((p) => `${int(p.readingsPerS)} (${opt(p.cpuSPerMillion, (n) => n.toFixed(2))})`).join(' → ');
      warm.push(`| ${s.label} | ${name} | ${parts} | ${int(w.readingsPerS)} |`);
    }
  }
  const correct: string[] = [
    '| System | Acknowledges | Bulk sums | Single sums | Resending 10% with other counts | kill -9 mid-run, then restart |',
    '|---|---|---|---|---|---|',
  ];
  for (const s of r.systems) {
    correct.push(
      `| ${s.label} | ${s.acknowledges} | ${sumsCell(s.bulk?.sums)} | ${sumsCell(s.single?.sums)} | ${duplicatesCell(s.duplicates)} | ${crashCell(s.crash)} |`,
    );
  }
  const goalLines = ['| Goal for Tally | Measured | Target | Met |', '|---|---:|---:|:---:|'];
  for (const g of goals(r)) goalLines.push(`| ${g.name} | ${g.value} | ${g.goal} | ${g.pass === null ? '–' : g.pass ? 'yes' : '**no**'} |`);
  const errors = r.systems.flatMap((s) => s.errors.map((e) => `- ${s.label}: ${e.split('\n')[0]}`));
  const skipped = r.skipped.map((s) => `- ${s.system} not benchmarked: ${s.reason}`);
  return [perf.join('\n'), warm.length > 2 ? warm.join('\n') : '', correct.join('\n'), goalLines.join('\n'), [...skipped, ...errors].join('\n')].filter((x) => x !== '').join('\n\n') + '\n';
}

/** The section for BENCHMARKS.md: machine, versions, date, method, charts and tables. */
export function renderSection(r: PeersResults, chartDir = 'bench/results', prefix = 'peers'): string {
  const m = r.machine;
  const o = r.options;
  const versions = r.systems.map((s) => `${s.label} ${s.version}`).join(', ');
  const bulkReadings = o.bulkSteps * o.devices;
  return `## Side by side with InfluxDB and VictoriaMetrics

Measured ${r.date.slice(0, 10)} with \`npm run bench:peers\`${r.quick ? ' (--quick: a short smoke run, not for comparison)' : ''} on
${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; data dirs on ${m.filesystem}.
Versions: ${versions}. The peers are Debian's packages (\`influxdb\`, \`victoria-metrics\`) with their
defaults except loopback ports, a fresh data dir, no request log and (InfluxDB) no self-monitoring
writes; VictoriaMetrics runs with \`-retentionPeriod=100y\` so the fixed 2024 timestamps are kept.
Tally runs the built service (\`node dist/app/cli.js serve\`) with ${Object.entries(o.tally).map(([k, v]) => `${k}=${v}`).join(', ')}.

The systems run one after the other, workload by workload (each workload on every system before the
next workload), each started and stopped by the script on 127.0.0.1, and one
load generator (${r.loadGenerator}, keep-alive, one request in flight per connection) shares the
machine with them, so figures are comparable within a run, not across machines. All bodies are
generated from seed ${o.seed} before timing; Tally gets \`POST /v1/readings?precision=s\` (JSON), the
peers get Influx line protocol \`m,device=<id> count=<n>i <ts>\` with \`precision=s\`${r.systems.some((s) => s.system === 'tally-lp') ? ', and so does "Tally (line protocol)": the same bytes, on `POST /write?db=bench&precision=s` (bulk only)' : ''}.

- **bulk**: ${o.devices.toLocaleString('en-US')} devices × ${o.bulkSteps.toLocaleString('en-US')} one-second steps = ${bulkReadings.toLocaleString('en-US')} readings; each request is one time step across all devices (${o.devices.toLocaleString('en-US')} readings), ${o.bulkConnections} connections, after ${o.bulkWarmupSteps.toLocaleString('en-US')} warm-up steps on the same fresh server.
- **single**: one reading per request, ${o.singleConnections} connections, ${o.singleSeconds} s after ${o.singleWarmupSeconds} s of warm-up, on a fresh data dir.
- **warm-up**: the timed parts measure a server that has been running, as a service in production has; what each did from its start is in the warm-up table (bulk in parts of up to ${(o.bulkWarmupPartSteps ?? 1000).toLocaleString('en-US')} steps), and the goals table shows the bulk ratio of the first part for reference.
- **duplicates**: after bulk, ${Math.round(o.duplicateFraction * 100)}% of the timed bulk readings are resent with greater counts, then each system's per-device sums are read back (Tally \`GET /v1/devices/<id>\`, InfluxDB \`SELECT sum(count) … GROUP BY device\`, VictoriaMetrics \`/api/v1/export\`) and matched against keep first, overwrite and double count.
${(o.passes ?? 1) > 1 ? `- **passes**: bulk and single run ${o.passes} times, the systems in turn (Tally, InfluxDB, VictoriaMetrics, Tally, ...); the tables show each system's median pass, and the goals the median of the ratios of passes run side by side.\n` : ''}- **crash**: single-reading load with ${o.singleConnections} connections on a fresh data dir, \`kill -9\` of the server after ${o.crashKillAfterSeconds} s, restart on the same dir, then every acknowledged reading is looked up.

Server CPU is user + system time from \`/proc/<pid>/stat\` over the timed part, per million readings
acknowledged; disk writes are \`write_bytes\` from \`/proc/<pid>/io\` over the same window (work a
server defers past it, such as VictoriaMetrics' buffered flushes or later compactions, is not
counted); peak RSS is \`VmHWM\`. Latencies are of 2xx responses.

![readings/s per system](${chartDir}/${prefix}-readings.svg)
![p99 latency per system](${chartDir}/${prefix}-p99.svg)

${renderTables(r)}`;
}

const ORDER = ['Tally', 'Tally (line protocol)', 'InfluxDB', 'VictoriaMetrics'];
const COLORS = ['#2f6fb0', '#7aa6d6', '#c9643b', '#5b9a4a'];

function barChart(r: PeersResults, title: string, field: 'readingsPerS' | 'p99Ms', axis: string, format: string): TopLevelSpec {
  const rows: { system: string; workload: string; value: number }[] = [];
  for (const s of r.systems) {
    if (s.bulk) rows.push({ system: s.label, workload: `bulk (${s.bulk.readingsPerRequest.toLocaleString('en-US')} readings/request)`, value: s.bulk[field] });
    if (s.single) rows.push({ system: s.label, workload: 'single (1 reading/request)', value: s.single[field] });
  }
  const labels = r.systems.map((s) => s.label);
  const crashes = r.systems.filter((s) => s.crash !== undefined).map((s) => `${s.label} ${int(s.crash!.lost)}`);
  const subtitle = [`${r.machine.cores} cores, ${r.date.slice(0, 10)}${r.quick ? ' (quick run)' : ''}`];
  if (crashes.length > 0) subtitle.push('acknowledged readings lost to kill -9:', crashes.join(' · '));
  const domain = [...ORDER.filter((l) => labels.includes(l)), ...labels.filter((l) => !ORDER.includes(l))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle },
    data: { values: rows },
    facet: { column: { field: 'workload', type: 'nominal', title: null, sort: 'ascending' } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 240,
      height: 220,
      encoding: {
        x: { field: 'system', type: 'nominal', sort: domain, title: null, axis: { labelAngle: 0 } },
        y: { field: 'value', type: 'quantitative', title: axis, axis: { format: '~s' } },
      },
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            color: { field: 'system', type: 'nominal', scale: { domain, range: COLORS.slice(0, domain.length) }, legend: null },
          },
        },
        { mark: { type: 'text', dy: -6 }, encoding: { text: { field: 'value', type: 'quantitative', format } } },
      ],
    },
    config: { font: 'sans-serif', view: { stroke: null } },
  };
}

async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The two charts: readings/s and p99 latency per system, one panel per workload. */
export async function renderCharts(r: PeersResults): Promise<{ readings: string; p99: string }> {
  return {
    readings: await toSvg(barChart(r, 'Readings acknowledged per second (higher is better)', 'readingsPerS', 'readings/s', ',.0f')),
    p99: await toSvg(barChart(r, 'p99 latency of acknowledged requests (lower is better)', 'p99Ms', 'p99 ms', ',.1f')),
  };
}

/** Writes <prefix>.json, <prefix>.md, <prefix>-section.md and the two SVGs into `dir`. */
export async function writeReport(r: PeersResults, dir: string, prefix: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const charts = await renderCharts(r);
  const files: [string, string][] = [
    [`${prefix}.json`, `${JSON.stringify(r, null, 2)}\n`],
    [`${prefix}.md`, `# Tally side by side with InfluxDB and VictoriaMetrics (${r.date})\n\n${renderTables(r)}`],
    [`${prefix}-section.md`, renderSection(r, 'bench/results', prefix)],
    [`${prefix}-readings.svg`, charts.readings],
    [`${prefix}-p99.svg`, charts.p99],
  ];
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  return files.map(([name]) => join(dir, name));
}
