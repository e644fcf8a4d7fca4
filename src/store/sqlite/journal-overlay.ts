import type Database from 'better-sqlite3';
import { chunkLine, type ChunkReading } from './chunk.js';
import { decodeText } from './chunk-text.js';
import type { ChunkRow } from './chunk-reads.js';

/**
 * What the journal holds that chunks and summaries do not yet: committed readings not yet
 * compacted, read by a reader in its own snapshot. Reads use it when the writer cannot compact (a
 * full disk, a failing writer): they answer from everything committed without asking the writer.
 *
 * A compaction round commits device by device (compaction.ts) and deletes its journal rows with
 * its last slice, so the `compaction` row says which of them are already in chunks: readings of
 * entries through `through` of devices with keys up to `done_key`.
 */
export class JournalOverlay {
  /** Each device's pending readings, in timestamp order. */
  readonly byKey = new Map<number, ChunkReading[]>();

  /** Reads the journal; call inside the snapshot the rest of the read uses. */
  static read(db: Database.Database): JournalOverlay {
    const overlay = new JournalOverlay();
    const progress = db.prepare('SELECT through, done_key FROM compaction').get() as { through: number; done_key: number } | undefined;
    for (const row of db.prepare('SELECT seq, data, keys FROM journal ORDER BY seq').iterate() as Iterable<{ seq: number; data: Buffer; keys: Buffer }>) {
      const keys = new Int32Array(new Uint8Array(row.keys).buffer); // a copy: aligned
      const readings = decodeText(row.data.toString('utf8'));
      const compacted = progress !== undefined && row.seq <= progress.through ? progress.done_key : 0;
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        if (key === 0 || key <= compacted) continue; // a duplicate, or already in chunks
        let list = overlay.byKey.get(key);
        if (list === undefined) overlay.byKey.set(key, (list = []));
        list.push(readings[i]!);
      }
    }
    for (const list of overlay.byKey.values()) list.sort((a, b) => a.tsUs - b.tsUs);
    return overlay;
  }

  get empty(): boolean {
    return this.byKey.size === 0;
  }

  /** A device's pending readings as one text chunk row, for the chunk walks of reads (chunk-reads.ts). */
  chunkOf(key: number, ascending: boolean): ChunkRow | undefined {
    const list = this.byKey.get(key);
    if (list === undefined) return undefined;
    return { bound: ascending ? list[0]!.tsUs : list[list.length - 1]!.tsUs, data: list.map((r) => chunkLine(r.tsUs, r.count, r.tsText, r.payload)).join('') };
  }

  /**
   * SQL naming a `devices` that adds the pending readings to the table's summaries (a CTE shadows
   * the table of the same name in the statement it prefixes), and its one parameter.
   */
  devicesCte(): { sql: string; param: string } {
    const rows: unknown[] = [];
    for (const [key, list] of this.byKey) {
      let total = 0;
      for (const r of list) total += r.count ?? 0;
      const latest = list[list.length - 1]!;
      rows.push([key, list.length, total, list[0]!.tsUs, latest.tsUs, latest.tsText, latest.payload]);
    }
    const newer = 'o.key IS NOT NULL AND (d.latest_ts_us IS NULL OR o.latest > d.latest_ts_us)';
    const sql = `WITH overlay AS (
        SELECT value ->> 0 AS key, value ->> 1 AS n, value ->> 2 AS total, value ->> 3 AS first, value ->> 4 AS latest,
               value ->> 5 AS latest_text, value ->> 6 AS latest_payload
        FROM json_each(?)),
      devices AS (
        SELECT d.key, d.device_id,
          CASE WHEN o.key IS NULL THEN d.first_ts_us ELSE min(coalesce(d.first_ts_us, o.first), o.first) END AS first_ts_us,
          CASE WHEN ${newer} THEN o.latest ELSE d.latest_ts_us END AS latest_ts_us,
          CASE WHEN ${newer} THEN o.latest_text ELSE d.latest_ts_text END AS latest_ts_text,
          CASE WHEN ${newer} THEN o.latest_payload ELSE d.latest_payload END AS latest_payload,
          d.reading_count + coalesce(o.n, 0) AS reading_count,
          d.cumulative_count + coalesce(o.total, 0) AS cumulative_count
        FROM main.devices d LEFT JOIN overlay o ON o.key = d.key)`;
    return { sql, param: JSON.stringify(rows) };
  }
}
