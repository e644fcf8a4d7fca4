import type pg from 'pg';
import { withClient } from './client.js';
import { notePrunedPartition } from './sql.js';

/**
 * Readings are partitioned by time (PARTITION BY RANGE (ts_us)), one partition per week since the
 * epoch, created when the first reading of its week arrives. Retention then drops whole old weeks
 * instead of deleting their rows one by one, and a week's indexes stay small.
 */

/** Width of a partition: one week, in microseconds. */
export const PARTITION_US = 7 * 86_400 * 1_000_000;

/** The advisory lock key of partition DDL: nodes creating the same week at once take turns. */
const PARTITION_LOCK = 0x74_61_6c_6c_70;

const NAME = /^readings_w(m?)(\d+)$/;

/** The partition (its week's index since the epoch) a timestamp falls in. */
export const weekOf = (tsUs: number): number => Math.floor(tsUs / PARTITION_US);

export function partitionName(week: number): string {
  return `readings_w${week < 0 ? 'm' : ''}${Math.abs(week)}`;
}

function weekOfName(name: string): number | undefined {
  const m = NAME.exec(name);
  return m === null ? undefined : (m[1] === 'm' ? -1 : 1) * Number(m[2]);
}

/** Runs `statements` in one transaction under the partition lock, in one round trip. */
function underLock(pool: pg.Pool, statements: readonly string[]): Promise<unknown> {
  return withClient(pool, (client) => client.query(['BEGIN', `SELECT pg_advisory_xact_lock(${PARTITION_LOCK})`, ...statements, 'COMMIT'].join(';\n')));
}

/** This node's view of which weeks have a partition: a cache, reloaded when another node dropped one. */
export class Partitions {
  private known = new Set<number>();
  private loaded = false;

  constructor(private readonly pool: pg.Pool) {}

  private async load(): Promise<void> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass`,
    );
    this.known = new Set(rows.map((r) => weekOfName(r.name)).filter((w): w is number => w !== undefined));
    this.loaded = true;
  }

  /** Another node may have dropped a partition this node knew of: look again before the next write. */
  forget(): void {
    this.loaded = false;
  }

  /** Makes sure every week of these timestamps has its partition (a round trip only when one is new). */
  async ensure(tsUs: readonly number[]): Promise<void> {
    if (!this.loaded) await this.load();
    const missing = new Set<number>();
    for (const ts of tsUs) {
      const week = weekOf(ts);
      if (!this.known.has(week)) missing.add(week);
    }
    if (missing.size === 0) return;
    await underLock(
      this.pool,
      [...missing].map(
        (w) => `CREATE TABLE IF NOT EXISTS ${partitionName(w)} PARTITION OF readings FOR VALUES FROM (${w * PARTITION_US}) TO (${(w + 1) * PARTITION_US})`,
      ),
    );
    for (const w of missing) this.known.add(w);
  }

  /**
   * Drops the oldest partitions that lie wholly before `beforeUs` while each holds no more than
   * what is left of `limit` (a drop is one catalog change whatever it holds, but the contract bounds
   * how many readings one call removes). Resolves how many readings went.
   */
  async dropBefore(beforeUs: number, limit: number): Promise<number> {
    await this.load();
    const old = [...this.known].filter((w) => (w + 1) * PARTITION_US <= beforeUs).sort((a, b) => a - b);
    let dropped = 0;
    for (const week of old) {
      const n = await this.dropIfAtMost(week, limit - dropped);
      if (n === undefined) break;
      this.known.delete(week);
      dropped += n;
    }
    return dropped;
  }

  /** Drops the week's partition if it holds at most `most` readings (counted with writers locked out); its count, or undefined when kept. */
  private async dropIfAtMost(week: number, most: number): Promise<number | undefined> {
    const name = partitionName(week);
    return withClient(this.pool, async (client) => {
      await client.query(`BEGIN; SELECT pg_advisory_xact_lock(${PARTITION_LOCK})`);
      // Every node runs retention: another may have dropped this week a moment ago.
      const { rows } = await client.query<{ gone: boolean }>(`SELECT to_regclass('${name}') IS NULL AS gone`);
      if (rows[0]!.gone) {
        await client.query('ROLLBACK');
        return 0;
      }
      await client.query(`LOCK TABLE ${name} IN ACCESS EXCLUSIVE MODE`);
      const n = (await client.query<{ n: number }>(`SELECT count(*) AS n FROM ${name}`)).rows[0]!.n;
      // Summaries stay all-time: what the week held is added to its devices' pruned_* in the drop's transaction.
      await client.query(n <= most ? `${notePrunedPartition(name)}; DROP TABLE ${name}; COMMIT` : 'ROLLBACK');
      return n <= most ? n : undefined;
    });
  }
}
