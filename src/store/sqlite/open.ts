import Database from 'better-sqlite3';
import type { SqliteStoreConfig } from './config.js';
import { migrate } from './schema.js';

/** Page size of a new database file: suits journal rows of whole batches and chunk rows of kilobytes. */
export const PAGE_BYTES = 16_384;
/**
 * WAL pages between automatic checkpoints (SQLite's default is 1,000). A checkpoint copies each
 * page once however many times the WAL holds it, and the journal's and the device summaries' pages
 * are rewritten every round, so rarer checkpoints write fewer bytes per reading.
 */
export const WAL_CHECKPOINT_PAGES = 4000;

/** How long a write waits for a lock another connection holds before it fails (SQLITE_BUSY). */
export const BUSY_TIMEOUT_MS = 5000;

/** The writer's connection and the lock that makes it the only one. */
export interface WriterDatabase {
  readonly db: Database.Database;
  /** Held until close; released by the OS if the process dies. */
  readonly lock: Database.Database;
}

/**
 * Opens the file for writing: takes the writer lock, sets the pragmas every promise rests on
 * (WAL; `synchronous` as configured, FULL by default: an acknowledged reading survives power loss)
 * and brings the schema up to date.
 */
export function openWriterDatabase(config: SqliteStoreConfig): WriterDatabase {
  const lock = holdWriterLock(config.file);
  try {
    const db = new Database(config.file);
    db.pragma(`page_size = ${PAGE_BYTES}`); // takes effect on a new file only
    // New files only, too: free pages (a drained journal, chunks sealed) can be given back (writer.ts).
    db.pragma('auto_vacuum = INCREMENTAL');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${config.synchronous}`);
    db.pragma(`cache_size = ${-config.cacheMiB * 1024}`);
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    // Truncated to this after a checkpoint, so the WAL file does not stay larger.
    db.pragma(`journal_size_limit = ${WAL_CHECKPOINT_PAGES * PAGE_BYTES}`);
    migrate(db);
    return { db, lock };
  } catch (err) {
    lock.close();
    throw err;
  }
}

/**
 * Takes the data file's writer lock: an exclusive lock on `<file>-lock`, held until close and
 * released by the OS if the process dies. Pending readings live in this writer's memory until
 * compacted, so a second writer on the same file could accept a reading the first holds: refuse it.
 */
export function holdWriterLock(file: string): Database.Database {
  const lock = new Database(`${file}-lock`, { timeout: 0 });
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS writer (pid INTEGER); DELETE FROM writer;');
    lock.prepare('INSERT INTO writer (pid) VALUES (?)').run(process.pid);
    lock.exec('COMMIT');
  } catch (err) {
    lock.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      throw new Error(`${file} is in use by another Tally (one writer per data file)`, { cause: err });
    }
    throw err;
  }
  return lock;
}
