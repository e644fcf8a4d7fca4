import type pg from 'pg';
import { AuditTally, storedSummary, type AuditedRow } from '../audit.js';
import type { AuditOptions, AuditReport } from '../types.js';
import { withClient } from './client.js';

/**
 * The PostgreSQL audit: every device summary against what its rows in `readings` add up to, rows
 * of `readings` that have no summary, and, when the amcheck extension is installed, the structure
 * of every B-tree index (heap included with `full`). PostgreSQL has no quick_check: the heap
 * itself is checked only as far as reading every row checks it (and by data checksums, when the
 * cluster has them). Devices go DEVICES_PER_SNAPSHOT at a time, each page in a read-only
 * REPEATABLE READ snapshot: a summary and its readings change in one statement, so one snapshot
 * sees them agree, and no snapshot is held for the whole run.
 */

const DEVICES_PER_SNAPSHOT = 256;

interface AuditRow extends AuditedRow {
  key: number;
  n: number;
  total: number;
  r_first: number | null;
  r_latest: number | null;
  r_latest_ts_text: string | null;
  r_latest_payload: string | null;
}

/** A page of summaries, each with what its readings add up to (by the primary key, partition by partition). */
const AUDIT_PAGE = `
SELECT d.key, d.device_id, d.first_ts_us, d.latest_ts_us, d.latest_ts_text, d.latest_payload,
       d.reading_count, d.cumulative_count, d.pruned_count, d.pruned_sum,
       r.n, r.total, r.r_first, r.r_latest, l.ts_text AS r_latest_ts_text, l.payload AS r_latest_payload
FROM devices d
CROSS JOIN LATERAL (
  SELECT count(*) AS n, coalesce(sum(count), 0)::bigint AS total, min(ts_us) AS r_first, max(ts_us) AS r_latest
  FROM readings WHERE device_id = d.device_id
) r
LEFT JOIN LATERAL (SELECT ts_text, payload FROM readings WHERE device_id = d.device_id ORDER BY ts_us DESC LIMIT 1) l ON true
WHERE d.key > $1 ORDER BY d.key LIMIT ${DEVICES_PER_SNAPSHOT}`;

/** Devices with readings and no summary (at most 100 named). */
const ORPHANS = `
SELECT device_id, count(*) AS n FROM readings r
WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.device_id = r.device_id)
GROUP BY device_id ORDER BY device_id LIMIT 100`;

/** Tally's B-tree indexes (partitions' own, not the partitioned parents, which hold no pages). */
const INDEXES = `
SELECT c.oid::regclass::text AS name FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
JOIN pg_class t ON t.oid = i.indrelid
WHERE am.amname = 'btree' AND c.relkind = 'i' AND t.relnamespace = current_schema()::regnamespace
  AND (t.relname = 'devices' OR t.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'readings'::regclass))
ORDER BY 1`;

async function checkPage(pool: pg.Pool, after: number, tally: AuditTally): Promise<number | undefined> {
  const rows = await withClient(pool, async (client) => {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows } = await client.query<AuditRow>(AUDIT_PAGE, [after]);
    await client.query('COMMIT');
    return rows;
  });
  for (const row of rows) {
    tally.device(
      storedSummary(row),
      {
        n: row.n,
        sum: row.total,
        firstTsUs: row.r_first,
        latestTsUs: row.r_latest,
        latestTsText: row.r_latest_ts_text,
        latestPayload: row.r_latest_payload,
      },
    );
  }
  return rows.length === DEVICES_PER_SNAPSHOT ? rows.at(-1)!.key : undefined;
}

/** amcheck's bt_index_check on each index, when the extension is installed; its summary line. */
async function indexCheck(pool: pg.Pool, full: boolean, tally: AuditTally): Promise<string> {
  const installed = (await pool.query(`SELECT 1 FROM pg_extension WHERE extname = 'amcheck'`)).rowCount === 1;
  if (!installed) return 'amcheck not installed: index structure not checked (CREATE EXTENSION amcheck to have it checked)';
  const indexes = (await pool.query<{ name: string }>(INDEXES)).rows;
  let failed = 0;
  for (const { name } of indexes) {
    try {
      await pool.query('SELECT bt_index_check($1::regclass, $2)', [name, full]);
    } catch (err) {
      // Not allowed to this role: say so once, rather than call every index corrupt.
      if ((err as { code?: string }).code === '42501') return `amcheck not permitted to this role: index structure not checked (${(err as Error).message})`;
      failed++;
      tally.mismatch(null, `amcheck: index ${name}: ${(err as Error).message}`);
    }
  }
  const what = full ? 'bt_index_check with heapallindexed' : 'bt_index_check';
  return `amcheck ${what} on ${indexes.length} indexes: ${failed === 0 ? 'ok' : `${failed} failed`}`;
}

export async function auditPostgres(pool: pg.Pool, options: AuditOptions): Promise<AuditReport> {
  const tally = new AuditTally();
  for (let after: number | undefined = 0; after !== undefined; ) after = await checkPage(pool, after, tally);
  for (const { device_id, n } of (await pool.query<{ device_id: string; n: number }>(ORPHANS)).rows) {
    tally.mismatch(device_id, `${n} readings are stored for it, and it has no summary`);
  }
  return tally.report(await indexCheck(pool, options.full, tally));
}
