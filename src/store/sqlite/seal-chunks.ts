import type Database from 'better-sqlite3';
import { sealLines, SEALED_CHUNK_BYTES } from './chunk.js';
import type { DeviceDirectory } from './devices.js';

/** A text chunk's row as sealing reads it: its UTF-8 bytes (no string decoded), then the columns it keeps. */
type TextRow = [lines: Buffer, firstTs: number, lastTs: number, n: number, counted: number | null, sum: number | null, min: number | null, max: number | null];

/** A run of a device's text chunks sealed as one: in time order, not overlapping, at most SEALED_CHUNK_BYTES of text. */
interface Group {
  readonly ids: number[];
  readonly rows: TextRow[];
  bytes: number;
}

/**
 * Text chunks that take no more appends (a device's open chunk was replaced by a newer one) beyond
 * this many bytes in all are sealed as they come, a step after each commit. Below it they wait for
 * the writer to be idle: sealing costs the writer 0.2-0.3 µs a reading (bench/writer.ts: decoding,
 * columns, deflate, rows moved), which a burst of writes would otherwise pay before its
 * acknowledgements.
 */
export const SEAL_BACKLOG_BYTES = 32 * 1024 * 1024;
/** Devices whose text chunks one step seals: a step is one transaction, a few milliseconds. */
const DEVICES_PER_STEP = 32;

/**
 * Seals text chunks once they take no more appends: each device's waiting chunks are read back,
 * cut into runs (in time order, not overlapping, up to SEALED_CHUNK_BYTES of text), and each run
 * becomes one sealed chunk in a new row (a new id, at the end of the table) while its text rows are
 * deleted. Not an UPDATE in place: the text left a page mostly empty that nothing would fill (ids
 * only grow; tried with bench/writer.ts, it left 42 bytes a reading on disk against 3), while
 * deleted rows' pages empty and are reused. Several small chunks sealed as one cost one deflate,
 * one row and one index entry each instead of several.
 *
 * Which chunks wait is kept in memory, and found again on open: text chunks take negative ids
 * (chunk-table.ts; migration 10 moved older files' to negative ids too), so they are the rows below
 * id 0 other than each device's newest.
 */
export class ChunkSealer {
  /** Device key → its text chunks that take no more appends (ids, bytes of text), devices in the order first noted. */
  private readonly waiting = new Map<number, { ids: number[]; bytes: number }>();
  private waitingBytes = 0;
  private readonly textRow: Database.Statement<[number], TextRow>;
  private readonly insert: Database.Statement<unknown[]>;
  private readonly remove: Database.Statement<[number]>;
  private readonly stepTx: (keys: number[]) => number;

  constructor(
    private readonly db: Database.Database,
    private readonly devices?: DeviceDirectory,
    private readonly backlogBound = SEAL_BACKLOG_BYTES,
  ) {
    this.textRow = db
      .prepare(
        `SELECT CAST(data AS BLOB), first_ts_us, last_ts_us, n, counted, count_sum, count_min, count_max
         FROM chunks WHERE id = ? AND typeof(data) = 'text'`,
      )
      .raw() as Database.Statement<[number], TextRow>;
    // A sealed chunk binds as the BLOB it is. Values, not INSERT ... SELECT from the same table (to
    // seal a text chunk), which SQLite runs through a temporary table.
    this.insert = db.prepare(
      `INSERT INTO chunks (device_key, first_ts_us, last_ts_us, n, data, counted, count_sum, count_min, count_max)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.remove = db.prepare('DELETE FROM chunks WHERE id = ?');
    this.stepTx = db.transaction((keys: number[]) => {
      let sealed = 0;
      for (const key of keys) sealed += this.sealDevice(key, this.waiting.get(key)?.ids ?? []);
      return sealed;
    }).immediate;
  }

  /** Finds the text chunks a previous run left waiting (a crash, or a close without sealing). */
  findWaiting(): void {
    const rows = this.db
      .prepare(
        `SELECT id, device_key AS key, octet_length(data) AS bytes FROM chunks c WHERE id < 0
           AND id <> (SELECT id FROM chunks n WHERE n.device_key = c.device_key ORDER BY last_ts_us DESC LIMIT 1)
         ORDER BY id DESC`,
      )
      .all() as { id: number; key: number; bytes: number }[];
    for (const { id, key, bytes } of rows) this.note(key, id, bytes);
  }

  /** Inserts a sealed chunk (the next id, after every other); returns its id. */
  insertSealed(key: number, firstTs: number, lastTs: number, n: number, blob: Buffer, counted: number | null, sum: number | null, min: number | null, max: number | null): number {
    return Number(this.insert.run(key, firstTs, lastTs, n, blob, counted, sum, min, max).lastInsertRowid);
  }

  /** A text chunk of the device that takes no more appends: sealed when the writer is idle, or once the backlog is over its bound. */
  note(key: number, id: number, bytes: number): void {
    const device = this.waiting.get(key);
    if (device === undefined) this.waiting.set(key, { ids: [id], bytes });
    else {
      device.ids.push(id);
      device.bytes += bytes;
    }
    this.waitingBytes += bytes;
  }

  /** Bytes of text waiting to be sealed. */
  get backlog(): number {
    return this.waitingBytes;
  }

  /** Whether the backlog is past its bound, so sealing cannot wait for an idle writer. */
  get due(): boolean {
    return this.waitingBytes > this.backlogBound;
  }

  /** Seals the waiting chunks of the devices noted first, in one transaction; returns how many chunks it sealed. */
  step(devices = DEVICES_PER_STEP): number {
    const keys: number[] = [];
    for (const key of this.waiting.keys()) {
      if (keys.length === devices) break;
      keys.push(key);
    }
    if (keys.length === 0) return 0;
    const sealed = this.stepTx(keys);
    // Committed: forget them (a failed step keeps them for the next).
    for (const key of keys) {
      this.waitingBytes -= this.waiting.get(key)!.bytes;
      this.waiting.delete(key);
    }
    return sealed;
  }

  /** Seals everything waiting; returns how many chunks it sealed. */
  all(): number {
    let sealed = 0;
    while (this.waiting.size > 0) sealed += this.step();
    return sealed;
  }

  /**
   * Seals the device's chunks `ids` (those still text and not its open chunk) inside the step's
   * transaction, in runs; returns how many chunks were sealed.
   */
  private sealDevice(key: number, ids: readonly number[]): number {
    const open = this.devices?.openChunk(key)?.id;
    const rows: { id: number; row: TextRow }[] = [];
    for (const id of ids) {
      if (id === open) continue;
      const row = this.textRow.get(id);
      if (row !== undefined) rows.push({ id, row });
    }
    rows.sort((a, b) => a.row[1] - b.row[1]);
    let sealed = 0;
    let group: Group | undefined;
    for (const { id, row } of rows) {
      const fits = group !== undefined && row[1] > group.rows.at(-1)![2] && group.bytes + row[0].length <= SEALED_CHUNK_BYTES;
      if (!fits) {
        if (group !== undefined) sealed += this.sealGroup(key, group);
        group = { ids: [], rows: [], bytes: 0 };
      }
      group!.ids.push(id);
      group!.rows.push(row);
      group!.bytes += row[0].length;
    }
    if (group !== undefined) sealed += this.sealGroup(key, group);
    return sealed;
  }

  /** Seals a run as one chunk, or (should its readings not seal together) each chunk alone; what cannot be sealed stays text. */
  private sealGroup(key: number, group: Group): number {
    const { ids, rows } = group;
    const blob = sealLines(rows.length === 1 ? rows[0]![0] : Buffer.concat(rows.map((r) => r[0]), group.bytes));
    if (blob === undefined) {
      if (rows.length === 1) return 0; // kept as text: readers read both forms
      let sealed = 0;
      for (let i = 0; i < rows.length; i++) sealed += this.sealGroup(key, { ids: [ids[i]!], rows: [rows[i]!], bytes: rows[i]![0].length });
      return sealed;
    }
    const first = rows[0]!;
    const last = rows.at(-1)!;
    let n = 0;
    let counted: number | null = 0;
    let sum = 0;
    let min: number | null = null;
    let max: number | null = null;
    for (const row of rows) {
      n += row[3];
      if (row[4] === null || counted === null) {
        counted = null; // a chunk written before counts were kept: unknown
        continue;
      }
      counted += row[4];
      sum += row[5] ?? 0;
      if (row[6] !== null && (min === null || row[6] < min)) min = row[6];
      if (row[7] !== null && (max === null || row[7] > max)) max = row[7];
    }
    const known = counted !== null;
    this.insertSealed(key, first[1], last[2], n, blob, counted, known ? sum : null, known ? min : null, known ? max : null);
    for (const id of ids) this.remove.run(id);
    return ids.length;
  }
}

/**
 * Seals every text chunk except each device's newest (which keeps taking appends as text): the
 * upgrade of a file written before chunks were sealed (schema migration 9). Inside the caller's
 * transaction; returns how many chunks it sealed.
 */
export function sealOldChunks(db: Database.Database): number {
  // Ids first: better-sqlite3 runs no other statement on a connection while one iterates.
  const rows = db
    .prepare(
      `SELECT id, device_key AS key FROM chunks c WHERE typeof(data) = 'text'
         AND id <> (SELECT id FROM chunks n WHERE n.device_key = c.device_key ORDER BY last_ts_us DESC LIMIT 1)`,
    )
    .all() as { id: number; key: number }[];
  // Each step's transaction nests in the migration's as a savepoint.
  const sealer = new ChunkSealer(db);
  for (const { id, key } of rows) sealer.note(key, id, 0);
  return sealer.all();
}

/**
 * Moves text chunks with positive ids (each device's newest, left text by migration 9) below id 0,
 * where text chunks are now written, so the sealer finds every text chunk among negative ids
 * (schema migration 10). Inside the caller's transaction.
 */
export function textChunksBelowZero(db: Database.Database): void {
  const ids = db.prepare(`SELECT id FROM chunks WHERE id > 0 AND typeof(data) = 'text'`).pluck().all() as number[];
  let next = (db.prepare('SELECT coalesce(min(id), 0) FROM chunks WHERE id < 0').pluck().get() as number) - 1;
  const move = db.prepare('UPDATE chunks SET id = ? WHERE id = ?');
  for (const id of ids) move.run(next--, id);
}
