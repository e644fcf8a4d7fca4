/**
 * The raw PostgreSQL ceiling of a workload: the bench's own request bodies, turned into readings as
 * Tally would store them, inserted by a bare `pg` pool with the very statement Tally's store runs
 * (sql.APPEND, its parameters built by sql.appendParams, the weekly partitions made by the store's
 * Partitions), one body per statement, `lanes` statements in flight: no HTTP, no Tally.
 */
import pg from 'pg';
import type { Reading } from '../src/domain/reading.js';
import { migrate } from '../src/store/postgres/migrations.js';
import { Partitions } from '../src/store/postgres/partitions.js';
import * as sql from '../src/store/postgres/sql.js';
import { withClient } from '../src/store/postgres/client.js';
import { measureCpu } from './cpu.js';
import { peakRssBytes } from './proc.js';
import type { RunFigures } from './report.js';
import type { Workload } from './workload.js';

/** The readings Tally makes of body i (the Bright Counter JSON body, or /v1 NDJSON lines without payload). */
export function readingsOf(workload: Workload, i: number): Reading[] {
  const text = workload.body(i).toString('utf8');
  if (workload.contentType === 'application/x-ndjson') {
    const out: Reading[] = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const r = JSON.parse(line) as { device_id: string; ts: string; count: number };
      out.push({ deviceId: r.device_id, tsUs: Date.parse(r.ts) * 1000, tsText: r.ts, count: r.count, payload: null });
    }
    return out;
  }
  const body = JSON.parse(text) as { id: string; readings: Array<{ count: number; timestamp: string }> };
  return body.readings.map((r) => ({ deviceId: body.id, tsUs: Date.parse(r.timestamp) * 1000, tsText: r.timestamp, count: r.count, payload: null }));
}

/**
 * Opens `n` connections of the pool now, so none is opened inside a timed run, and answers their
 * backends' PIDs (the pool must keep them: no idle timeout shorter than the bench).
 */
export async function openAll(pool: pg.Pool, n: number): Promise<number[]> {
  const clients = await Promise.all(Array.from({ length: n }, () => pool.connect()));
  const pids = await Promise.all(clients.map(async (c) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid));
  for (const c of clients) c.release();
  return pids;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export class Ceiling {
  /** Next body of the workload to insert: like Tally's, the sequence carries on from run to run. */
  private next = 0;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly partitions: Partitions,
    readonly lanes: number,
    /** PIDs of the PostgreSQL backends of the pool's connections: the "server" of the CPU shares. */
    readonly backendPids: readonly number[],
  ) {}

  /** A pool of `lanes` connections on `url` (a fresh database: the schema is made here, untimed). */
  static async open(url: string, lanes: number): Promise<Ceiling> {
    const pool = new pg.Pool({ connectionString: url, max: lanes, idleTimeoutMillis: 0 });
    pool.on('error', () => undefined);
    await withClient(pool, migrate);
    return new Ceiling(pool, new Partitions(pool), lanes, await openAll(pool, lanes));
  }

  /** `lanes` loops of one body per statement for `seconds`; the figures of the run, as a server's. */
  async run(workload: Workload, seconds: number, measure = true): Promise<RunFigures> {
    const latencies: number[] = [];
    let readings = 0;
    let statements = 0;
    let errors = 0;
    const stopCpu = measure ? measureCpu(this.backendPids) : () => null;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    const lane = async () => {
      while (performance.now() < deadline) {
        const batch = readingsOf(workload, this.next++ % workload.size);
        const t0 = performance.now();
        try {
          // As PostgresStore.appendBatch: parameters in one pass, partitions, the statement, the flags.
          const { values, ts } = sql.appendParams(batch);
          await this.partitions.ensure(ts);
          const { rows } = await this.pool.query<{ ord: string }>(sql.APPEND, values);
          const stored = new Uint8Array(batch.length);
          for (const { ord } of rows) stored[Number(ord) - 1] = 1;
          latencies.push(performance.now() - t0);
          readings += batch.length;
          statements++;
        } catch {
          errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: this.lanes }, lane));
    const durationS = (performance.now() - started) / 1000;
    const cpu = stopCpu();
    latencies.sort((a, b) => a - b);
    const rss = peakRssBytes(process.pid);
    return {
      server: 'pg-ceiling',
      scenario: workload.name,
      connections: this.lanes,
      durationS,
      requestsPerS: statements / durationS,
      readingsPerS: readings / durationS,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      non2xx: 0,
      errors,
      peakRssMiB: rss === undefined ? null : rss / 1024 ** 2,
      cpu,
    };
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

