import type Database from 'better-sqlite3';
import { Appender } from './append.js';
import { ChunkTable } from './chunk-table.js';
import type { ReadingColumns } from './columns.js';
import { Compactor } from './compaction.js';
import { DIRECT_RUN_READINGS, type SqliteStoreConfig } from './config.js';
import { DeviceDirectory } from './devices.js';
import { Journal } from './journal.js';
import { SqliteKeyTable } from './keys.js';
import { BUSY_TIMEOUT_MS, openWriterDatabase } from './open.js';
import { PendingReadings } from './pending.js';
import type { WriterSettings } from './protocol.js';
import { ChunkSealer } from './seal-chunks.js';

const SYNCHRONOUS_NAMES = ['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const;
/** Free pages kept for the next writes (16 KiB each), and the most given back in one transaction. */
const FREE_PAGES_KEPT = 64;
const RELEASE_PAGES = 1024;

/** What an append reports: a flag per reading, and the journal position that holds them. */
export interface AppendResult {
  readonly stored: Uint8Array;
  /** Readers see this batch once compaction has reached this seq. */
  readonly seq: number;
}

/**
 * The single writer of a SQLite database. It runs on the writer thread; one `append` is one
 * transaction, committed (and, with synchronous=FULL, fsynced) before it returns.
 *
 * A commit writes the batch's new readings as one `journal` row (append.ts); `compactStep` later
 * moves journal entries into per-device `chunks` and updates the device summaries (compaction.ts);
 * `sealStep`, later still, seals the text chunks that take no more appends (seal-chunks.ts).
 * Until then the readings are also held in memory (`PendingReadings`) for deduplication; after a
 * crash the journal is replayed on open.
 */
export class SqliteWriter {
  private readonly db: Database.Database;
  private readonly lock: Database.Database;
  private readonly pending = new PendingReadings();
  private readonly devices: DeviceDirectory;
  private readonly chunks: ChunkTable;
  private readonly appender: Appender;
  private readonly compactor: Compactor;
  private readonly sealer: ChunkSealer;
  private lastSeq = 0;
  /** Whether the file can give free pages back (auto_vacuum=INCREMENTAL: files created since it was set). */
  private readonly incrementalVacuum: boolean;
  /** The API keys, changed on this connection like everything else the server writes. */
  readonly keys: SqliteKeyTable;

  constructor(private readonly config: SqliteStoreConfig) {
    ({ db: this.db, lock: this.lock } = openWriterDatabase(config));
    const journal = new Journal(this.db);
    this.devices = new DeviceDirectory(this.db);
    this.sealer = new ChunkSealer(this.db, this.devices, config.sealBacklogBytes);
    this.sealer.findWaiting();
    this.chunks = new ChunkTable(this.db, this.devices, this.sealer);
    this.appender = new Appender(this.db, this.pending, this.chunks, this.devices, journal, config.directRunReadings ?? DIRECT_RUN_READINGS);
    this.compactor = new Compactor(this.db, this.pending, this.chunks, this.devices, journal);
    this.keys = new SqliteKeyTable(this.db);
    this.incrementalVacuum = this.db.pragma('auto_vacuum', { simple: true }) === 2;
    this.replay(journal);
  }

  /** Seq through which readers see every acknowledged reading. */
  get compactedThrough(): number {
    return this.pending.size === 0 ? this.lastSeq : this.compactor.compactedSeq;
  }

  /** Backlog at which a compaction step is due, and how many readings one step moves at least. */
  get compactRows(): number {
    return this.config.compactRows;
  }

  /** Readings waiting for compaction. */
  get backlog(): number {
    return this.pending.size;
  }

  /** Whether a compaction round is under way (it ends after its last slice). */
  get compacting(): boolean {
    return this.compactor.compacting;
  }

  /** Bytes of text chunks waiting to be sealed (seal-chunks.ts). */
  get sealBacklog(): number {
    return this.sealer.backlog;
  }

  /** Whether sealing is past its backlog bound and must keep up with commits rather than wait for an idle writer. */
  get sealDue(): boolean {
    return this.sealer.due;
  }

  /** One step of sealing (a few devices' waiting text chunks, one transaction); returns how many chunks it sealed. */
  sealStep(): number {
    return this.sealer.step();
  }

  /** Inserts a batch in one transaction; returns 1 (stored) or 0 (duplicate) per reading. */
  append(cols: ReadingColumns): AppendResult {
    // Seqs only grow within a run (a rowid could be reused once compaction empties the journal).
    const { stored, entry } = this.appender.append(cols, this.lastSeq + 1);
    if (entry.stored > 0) this.lastSeq = entry.seq;
    return { stored, seq: this.lastSeq };
  }

  /** One step of compaction (one slice of a round, one transaction); returns how many readings moved. */
  compactStep(): number {
    return this.compactor.step();
  }

  /** Compacts everything pending. */
  compactAll(): void {
    this.compactor.all();
  }

  /**
   * Gives free pages beyond a slack back to the file system, at most `RELEASE_PAGES` a call: the
   * journal's pages once compacted, and those of text chunks since sealed, which the file would
   * otherwise keep at its peak size. A no-op on files created before auto_vacuum was set.
   * Returns whether it gave any back.
   */
  releaseFreePages(): boolean {
    if (!this.incrementalVacuum) return false;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if (free <= FREE_PAGES_KEPT) return false;
    this.db.pragma(`incremental_vacuum(${Math.min(free - FREE_PAGES_KEPT, RELEASE_PAGES)})`);
    return (this.db.pragma('freelist_count', { simple: true }) as number) < free;
  }

  /** Gives back every free page beyond the slack, RELEASE_PAGES per transaction. */
  private releaseAllFreePages(): void {
    while (this.releaseFreePages());
  }

  /**
   * Once everything is compacted and appends have paused: gives the free pages back and
   * checkpoints the write-ahead log into the file, truncating it (as far as readers let it), so an
   * idle store's files hold its data and little else.
   */
  settle(): void {
    this.sealer.all();
    this.releaseAllFreePages();
    // Not waiting for readers (a long read holds its snapshot): what they still need stays in the WAL.
    this.db.pragma('busy_timeout = 0');
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  /** After a crash: the journal holds committed readings that were never compacted. */
  private replay(journal: Journal): void {
    const { entries, progress } = journal.readBack();
    for (const { seq, keys, readings } of entries) {
      const entry = this.pending.begin(seq, readings);
      for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) this.pending.add(entry, i, keys[i]!);
      this.pending.finish(entry);
      this.lastSeq = seq;
    }
    // A round the crash interrupted resumes after the devices it had done, over the same entries
    // (the journal still holds all of them: it loses a round's entries only with its last slice).
    if (progress !== undefined) this.compactor.resume(progress.doneKey, progress.through);
    this.compactAll();
  }

  /** The durability settings in force on this connection, as SQLite reports them. */
  settings(): WriterSettings {
    const level = this.db.pragma('synchronous', { simple: true }) as number;
    return { synchronous: SYNCHRONOUS_NAMES[level]!, journalMode: this.db.pragma('journal_mode', { simple: true }) as string };
  }

  /**
   * Whether a write could start now: takes the write lock (BEGIN IMMEDIATE) and reads the schema,
   * then rolls back, waiting at most `waitMs` for the lock. Throws SQLite's error (SQLITE_BUSY while
   * another connection holds the database locked, SQLITE_READONLY, SQLITE_IOERR...).
   */
  probe(waitMs: number): void {
    this.db.pragma(`busy_timeout = ${Math.max(0, Math.floor(waitMs))}`);
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        this.db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get();
      } finally {
        this.db.exec('ROLLBACK');
      }
    } finally {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  /** Removes a device and all its readings; returns whether it existed. */
  deleteDevice(deviceId: string): boolean {
    // The journal may hold the device's readings: compact first, so no replay brings them back.
    this.compactAll();
    const key = this.devices.keyOf(deviceId);
    if (key === undefined) return false;
    this.db.transaction(() => this.chunks.deleteDevice(key)).immediate();
    this.devices.removed(deviceId, key);
    return true;
  }

  /** Deletes up to `limit` of the oldest readings before `beforeUs` in one short transaction; returns how many went. */
  prune(beforeUs: number, limit: number): number {
    this.compactAll();
    return this.db.transaction(() => this.chunks.prune(beforeUs, limit)).immediate();
  }

  /**
   * Compacts what is pending (so the next open has nothing to replay) and closes. `compact: false`
   * leaves the journal as a crash would.
   */
  close({ compact = true } = {}): void {
    try {
      if (compact) {
        this.compactAll();
        this.sealer.all(); // at most SEAL_BACKLOG_BYTES of text: well under a second
        this.releaseAllFreePages();
      }
    } finally {
      this.db.close();
      this.lock.close();
    }
  }
}
