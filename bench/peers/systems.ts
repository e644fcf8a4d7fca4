/**
 * The three systems under test: how each is found, started on a data dir bound to 127.0.0.1, fed,
 * and asked what it stored. Nothing here installs anything: a missing peer names its package.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { eachLimited, freePort, httpOk, ROOT, startPingServer, startProcess, startServer, type Server } from '../proc.js';
import { FIELD, MEASUREMENT, readingKey, type Format } from './workload.js';

export type { Server };

export type SystemId = 'tally' | 'tally-lp' | 'influxdb' | 'victoria-metrics';
export const SYSTEM_IDS: readonly SystemId[] = ['tally', 'tally-lp', 'influxdb', 'victoria-metrics'];

export interface System {
  readonly id: SystemId;
  readonly label: string;
  readonly format: Format;
  /** Path and query of the write endpoint. */
  readonly writePath: string;
  readonly contentType: string;
  /** When a 2xx is sent, in the system's own terms. */
  readonly acknowledges: string;
  /** undefined when the system can run here, else what to do (e.g. which package to install). */
  missing(): string | undefined;
  version(): string;
  /** Starts the server on `dataDir` (fresh, or the same dir again after a crash). */
  start(dataDir: string): Promise<Server>;
  /** One-time setup on a fresh data dir (InfluxDB: create the database). */
  prepare(server: Server): Promise<void>;
  /** Makes acknowledged writes visible to queries (VictoriaMetrics buffers for about a second). */
  makeVisible(server: Server): Promise<void>;
  /** Per-device sum of stored counts, indexed like `ids`. */
  sums(server: Server, ids: readonly string[]): Promise<Float64Array>;
  /** Every stored reading as readingKey(device index, ts seconds). */
  keys(server: Server, ids: readonly string[]): Promise<Set<number>>;
  /** The phases this system runs (run.ts's keys: bulk, single, crash); all when absent. */
  readonly phases?: readonly string[];
}

function onPath(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function debianVersion(pkg: string): string | undefined {
  try {
    const v = execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return v === '' ? undefined : v;
  } catch {
    return undefined;
  }
}

async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(120_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

function indexOf(ids: readonly string[]): Map<string, number> {
  return new Map(ids.map((id, i) => [id, i]));
}

// ---------------------------------------------------------------------------------------------
// Tally

export interface TallyOptions {
  /** Extra node flags, e.g. --cpu-prof --cpu-prof-dir DIR. */
  readonly nodeArgs?: readonly string[];
}

export function tallySettings(): Record<string, string> {
  const settings: Record<string, string> = { TALLY_SYNCHRONOUS: 'FULL' };
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('TALLY_') && value !== undefined && !['TALLY_HOST', 'TALLY_PORT', 'TALLY_DATA_DIR'].includes(key)) settings[key] = value;
  }
  return settings;
}

export function tally(options: TallyOptions = {}): System {
  const cli = join(ROOT, 'dist/app/cli.js');
  return {
    id: 'tally',
    label: 'Tally',
    format: 'json',
    writePath: '/v1/readings?precision=s',
    contentType: 'application/json',
    acknowledges: `after the SQLite commit holding the reading (WAL, synchronous=${tallySettings().TALLY_SYNCHRONOUS})`,
    missing: () => (existsSync(cli) ? undefined : 'dist/app/cli.js not found: run `npm run build` first'),
    version: () => {
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
      let commit = 'unknown';
      try {
        commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
        const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        if (dirty.trim() !== '') commit += '+uncommitted src changes';
      } catch {
        // not a git checkout
      }
      return `${pkg.version} (${commit})`;
    },
    start: (dataDir) =>
      startPingServer('tally', process.execPath, [...(options.nodeArgs ?? []), cli, 'serve'], {
        ...tallySettings(),
        TALLY_LOG_LEVEL: process.env.TALLY_LOG_LEVEL ?? 'warn',
        TALLY_DATA_DIR: dataDir,
      }),
    prepare: async () => {},
    makeVisible: async () => {},
    sums: async (server, ids) => {
      const sums = new Float64Array(ids.length);
      await eachLimited(ids, 16, async (id, i) => {
        const res = await fetch(`${server.url}/v1/devices/${encodeURIComponent(id)}`);
        const text = await res.text();
        if (res.status === 404) return;
        if (!res.ok) throw new Error(`GET /v1/devices/${id}: HTTP ${res.status} ${text.slice(0, 200)}`);
        sums[i] = (JSON.parse(text) as { cumulative_count: number }).cumulative_count;
      });
      return sums;
    },
    keys: async (server, ids) => {
      const keys = new Set<number>();
      await eachLimited(ids, 16, async (id, i) => {
        let cursor: string | null = null;
        for (let page = 0; page < 100_000; page++) {
          const q: string = `limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
          const res = await fetch(`${server.url}/v1/devices/${encodeURIComponent(id)}/readings?${q}`);
          const text = await res.text();
          if (res.status === 404) return;
          if (!res.ok) throw new Error(`GET /v1/devices/${id}/readings: HTTP ${res.status} ${text.slice(0, 200)}`);
          const body = JSON.parse(text) as { items: { ts: string }[]; next_cursor: string | null };
          for (const item of body.items) keys.add(readingKey(i, Date.parse(item.ts) / 1000));
          cursor = body.next_cursor;
          if (cursor === null) return;
        }
      });
      return keys;
    },
  };
}


/**
 * Tally again, fed the line-protocol bodies InfluxDB and VictoriaMetrics get, byte for byte, on
 * InfluxDB's path (`db` is accepted and ignored): each line `m,device=<id> count=<n>i <ts>` is a
 * reading of <id> with count n (and payload {"measurement":"m"}). Bulk only: the issue's target is
 * Tally's line-protocol bulk figure against its JSON /v1 one.
 */
export function tallyLineProtocol(options: TallyOptions = {}): System {
  return {
    ...tally(options),
    id: 'tally-lp',
    label: 'Tally (line protocol)',
    format: 'line',
    writePath: `/write?db=${INFLUX_DB}&precision=s`,
    contentType: 'text/plain; charset=utf-8',
    phases: ['bulk'],
  };
}

// ---------------------------------------------------------------------------------------------
// InfluxDB 1.x

export const INFLUX_DB = 'bench';

export interface InfluxResponse {
  results: { error?: string; series?: { tags?: Record<string, string>; columns: string[]; values: [number, number][] }[] }[];
  error?: string;
}

function influxConfig(dataDir: string, httpPort: number, rpcPort: number): string {
  // Only what differs from the packaged defaults: paths, loopback ports, no request log, no
  // self-monitoring writes, no telemetry. The WAL is fsynced on every write (wal-fsync-delay 0s).
  return `reporting-enabled = false
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${dataDir}/meta"
  logging-enabled = false

[data]
  dir = "${dataDir}/data"
  wal-dir = "${dataDir}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false

[ifql]
  enabled = false

[logging]
  level = "warn"

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
`;
}

export async function influxQuery(server: Server, q: string, params = ''): Promise<InfluxResponse> {
  const body = new URLSearchParams({ q });
  const res = await getJson<InfluxResponse>(`${server.url}/query?db=${INFLUX_DB}${params}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: body.toString(),
  });
  const error = res.error ?? res.results.find((r) => r.error !== undefined)?.error;
  if (error !== undefined) throw new Error(`InfluxDB query ${q}: ${error}`);
  return res;
}

export function influxdb(): System {
  return {
    id: 'influxdb',
    label: 'InfluxDB',
    format: 'line',
    writePath: `/write?db=${INFLUX_DB}&precision=s`,
    contentType: 'text/plain; charset=utf-8',
    acknowledges: 'after the WAL write is fsynced (wal-fsync-delay 0s, the default)',
    missing: () => (onPath('influxd') ? undefined : 'influxd not found: install it with `apt-get install influxdb`'),
    version: () => debianVersion('influxdb') ?? execFileSync('influxd', ['version'], { encoding: 'utf8' }).trim(),
    start: (dataDir) =>
      startServer(
        'influxd',
        async (httpPort) => {
          const conf = join(dataDir, 'influxdb.conf');
          writeFileSync(conf, influxConfig(dataDir, httpPort, await freePort()));
          return startProcess('influxd', ['-config', conf], { cwd: dataDir });
        },
        async (url) => {
          const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(2_000) });
          await res.arrayBuffer();
          return res.status === 204;
        },
      ),
    prepare: async (server) => {
      await influxQuery(server, `CREATE DATABASE ${INFLUX_DB}`);
    },
    makeVisible: async () => {},
    sums: async (server, ids) => {
      const index = indexOf(ids);
      const sums = new Float64Array(ids.length);
      const res = await influxQuery(server, `SELECT sum("${FIELD}") FROM "${MEASUREMENT}" GROUP BY "device"`);
      for (const series of res.results[0]?.series ?? []) {
        const d = index.get(series.tags?.device ?? '');
        if (d === undefined) throw new Error(`InfluxDB returned an unknown device ${JSON.stringify(series.tags)}`);
        sums[d] = series.values[0]?.[1] ?? 0;
      }
      return sums;
    },
    keys: async (server, ids) => {
      const index = indexOf(ids);
      const keys = new Set<number>();
      const res = await influxQuery(server, `SELECT "${FIELD}" FROM "${MEASUREMENT}" GROUP BY "device"`, '&epoch=s');
      for (const series of res.results[0]?.series ?? []) {
        const d = index.get(series.tags?.device ?? '');
        if (d === undefined) throw new Error(`InfluxDB returned an unknown device ${JSON.stringify(series.tags)}`);
        for (const [ts] of series.values) keys.add(readingKey(d, ts));
      }
      return keys;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// VictoriaMetrics (single node)

const VM_SERIES = `${MEASUREMENT}_${FIELD}`;

/** Every raw sample of the bench series, one JSON line per series. */
async function vmExport(server: Server, ids: readonly string[], each: (device: number, values: number[], timestamps: number[]) => void): Promise<void> {
  const index = indexOf(ids);
  const query = new URLSearchParams({ 'match[]': `{__name__="${VM_SERIES}"}` });
  const res = await fetch(`${server.url}/api/v1/export?${query}`, { signal: AbortSignal.timeout(300_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`VictoriaMetrics export: HTTP ${res.status} ${text.slice(0, 300)}`);
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const row = JSON.parse(line) as { metric: Record<string, string>; values: number[]; timestamps: number[] };
    const d = index.get(row.metric.device ?? '');
    if (d === undefined) throw new Error(`VictoriaMetrics returned an unknown series ${JSON.stringify(row.metric)}`);
    each(d, row.values, row.timestamps);
  }
}

export function victoriaMetrics(): System {
  return {
    id: 'victoria-metrics',
    label: 'VictoriaMetrics',
    format: 'line',
    writePath: '/write?precision=s',
    contentType: 'text/plain; charset=utf-8',
    acknowledges: 'once the samples are buffered in memory; they are written to disk later, in the background',
    missing: () =>
      onPath('victoria-metrics') ? undefined : 'victoria-metrics not found: install it with `apt-get install victoria-metrics`',
    version: () => debianVersion('victoria-metrics') ?? 'unknown',
    start: (dataDir) => {
      const storage = join(dataDir, 'data');
      mkdirSync(storage, { recursive: true });
      return startServer(
        'victoria-metrics',
        (port) =>
          startProcess(
            'victoria-metrics',
            // A long retention so the bench's fixed 2024 timestamps are inside it (the default is a month).
            [`-storageDataPath=${storage}`, `-httpListenAddr=127.0.0.1:${port}`, '-retentionPeriod=100y', '-loggerLevel=WARN'],
            { cwd: dataDir },
          ),
        (url) => httpOk(`${url}/health`),
      );
    },
    prepare: async () => {},
    makeVisible: async (server) => {
      const res = await fetch(`${server.url}/internal/force_flush`, { signal: AbortSignal.timeout(60_000) });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`VictoriaMetrics /internal/force_flush: HTTP ${res.status}`);
    },
    sums: async (server, ids) => {
      const sums = new Float64Array(ids.length);
      await vmExport(server, ids, (d, values) => {
        for (const v of values) sums[d]! += v;
      });
      return sums;
    },
    keys: async (server, ids) => {
      const keys = new Set<number>();
      await vmExport(server, ids, (d, _values, timestamps) => {
        for (const t of timestamps) keys.add(readingKey(d, Math.round(t / 1000)));
      });
      return keys;
    },
  };
}
