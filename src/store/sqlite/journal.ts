import type Database from 'better-sqlite3';
import { decodeChunk } from './chunk.js';
import type { ReadingColumns } from './columns.js';
import type { EntryReadings, PendingEntry } from './pending.js';

/** A compaction round that was under way: its last journal seq and the greatest device key it had done. */
export interface RoundProgress {
  readonly through: number;
  readonly doneKey: number;
}

/** A journal row as replay reads it. */
export interface JournalEntry {
  readonly seq: number;
  readonly keys: Int32Array;
  readonly readings: EntryReadings;
}

/**
 * The `journal` table: every commit's new readings as one row (one B-tree append however many
 * devices it spans), until compaction has moved them into chunks; and the `compaction` row that
 * lets a round interrupted by a crash resume where it was.
 */
export class Journal {
  private readonly insert: Database.Statement<[number, Buffer, Buffer]>;
  private readonly clear: Database.Statement<[number]>;
  private readonly save: Database.Statement<[number, number]>;
  private readonly clearRound: Database.Statement<[]>;

  constructor(private readonly db: Database.Database) {
    this.insert = db.prepare('INSERT INTO journal (seq, data, keys) VALUES (?, ?, ?)');
    this.clear = db.prepare('DELETE FROM journal WHERE seq <= ?');
    this.save = db.prepare('INSERT OR REPLACE INTO compaction (id, through, done_key) VALUES (1, ?, ?)');
    this.clearRound = db.prepare('DELETE FROM compaction');
  }

  /** Files a committed entry: the batch's text as it came, and each reading's device key. */
  append(entry: PendingEntry): void {
    this.insert.run(entry.seq, entry.text, Buffer.from(entry.keys.buffer, entry.keys.byteOffset, entry.keys.byteLength));
  }

  /** A round's last slice is done: its entries leave the journal, and the round its progress row. */
  roundDone(through: number): void {
    this.clear.run(through);
    this.clearRound.run();
  }

  /** A round's slice is done, through the device with key `doneKey`. */
  saveProgress(through: number, doneKey: number): void {
    this.save.run(through, doneKey);
  }

  /** After a crash: the committed entries never compacted, oldest first, and the round under way, if any. */
  readBack(): { entries: JournalEntry[]; progress: RoundProgress | undefined } {
    const rows = this.db.prepare('SELECT seq, data, keys FROM journal ORDER BY seq').all() as Array<{ seq: number; data: Buffer; keys: Buffer }>;
    const entries = rows.map((row) => ({ seq: row.seq, ...entryOfRow(row.data, row.keys) }));
    const row = this.db.prepare('SELECT through, done_key FROM compaction').get() as { through: number; done_key: number } | undefined;
    return { entries, progress: row === undefined ? undefined : { through: row.through, doneKey: row.done_key } };
  }
}

/** What a journal row holds, as the pending entry it was when committed. */
function entryOfRow(text: Buffer, keyBytes: Buffer): { keys: Int32Array; readings: EntryReadings } {
  // A copy: Int32Array needs its buffer aligned, which a Buffer from SQLite need not be.
  const keys = new Int32Array(new Uint8Array(keyBytes).buffer);
  const decoded = decodeChunk(text.toString('utf8'));
  const ends = new Uint32Array(decoded.length);
  for (let i = 0, end = 0; i < decoded.length; i++) ends[i] = end = text.indexOf(10, end) + 1;
  return {
    keys,
    readings: {
      ts: Float64Array.from(decoded, (r) => r.tsUs),
      counts: Float64Array.from(decoded, (r) => r.count ?? NaN),
      text,
      ends,
    },
  };
}

/** A batch's readings as a pending entry holds them; the text is viewed as a Buffer (postMessage delivers a plain Uint8Array), not copied. */
export function entryReadings(cols: ReadingColumns): EntryReadings {
  const text = Buffer.from(cols.text.buffer, cols.text.byteOffset, cols.text.byteLength);
  return { ts: cols.tsUs, counts: cols.counts, text, ends: cols.ends };
}
