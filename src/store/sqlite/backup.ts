import { closeSync, copyFileSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { BackupResult } from '../types.js';
import { BUSY_TIMEOUT_MS, holdWriterLock } from './open.js';
import { SCHEMA_VERSION } from './schema.js';

/**
 * Backups of a SQLite store, and putting one back. `VACUUM INTO` copies one read snapshot of the
 * database while the writer goes on committing (the online backup API would start over at every
 * commit, and Tally's writer commits all the time); the copy holds the journal too, so every
 * reading acknowledged before the snapshot began is in it. A copy is written under a temporary
 * name, checked, fsynced, and only then given its name: a file with that name is always whole.
 */

/** Opens `file` read-only and checks it is a whole Tally database; returns its schema version. Throws saying what is wrong. */
export function verifyDatabase(file: string): number {
  if (!existsSync(file)) throw new Error(`${file} does not exist`);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new Error(`${file} cannot be opened as a SQLite database: ${(err as Error).message}`, { cause: err });
  }
  try {
    const check = db.prepare('PRAGMA quick_check(10)').pluck().all() as string[];
    if (check.length !== 1 || check[0] !== 'ok') throw new Error(`${file} fails quick_check: ${check.join('; ')}`);
    const version = db.pragma('user_version', { simple: true }) as number;
    const tables = db.prepare(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('devices', 'chunks', 'journal')`).pluck().get() as number;
    if (version === 0 || tables !== 3) throw new Error(`${file} is not a Tally database`);
    if (version > SCHEMA_VERSION) throw new Error(`${file} has schema version ${version}, newer than this Tally (${SCHEMA_VERSION})`);
    return version;
  } catch (err) {
    throw err instanceof Error && err.message.startsWith(file) ? err : new Error(`${file} is not a readable SQLite database: ${(err as Error).message}`, { cause: err });
  } finally {
    db.close();
  }
}

/** fsyncs a file, or a directory (so a rename in it survives power loss). */
function sync(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A name beside `target` for its copy in progress, unique to this process and thread. */
function temporaryName(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}-${threadId}.tmp`);
}

/** Gives the checked copy `tmp` the name `target`: atomically, and without replacing a file that appeared meanwhile unless `overwrite`. */
function publish(tmp: string, target: string, overwrite: boolean): void {
  if (overwrite) renameSync(tmp, target);
  else {
    try {
      linkSync(tmp, target); // fails with EEXIST rather than replace
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`${target} exists; pass --force to replace it`);
      throw err;
    }
    rmSync(tmp);
  }
  sync(dirname(target));
}

/** Writes a consistent, checked copy of the database `source` to `target` (synchronous: run it off the event loop). */
export function backupDatabase(source: string, target: string, options: { overwrite?: boolean } = {}): BackupResult {
  const started = performance.now();
  if (!options.overwrite && existsSync(target)) throw new Error(`${target} exists; pass --force to replace it`);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = temporaryName(target);
  rmSync(tmp, { force: true });
  try {
    // A connection of its own: VACUUM INTO needs one that may write (it writes only `tmp`).
    const db = new Database(source, { fileMustExist: true });
    try {
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.prepare('VACUUM INTO ?').run(tmp);
    } finally {
      db.close();
    }
    verifyDatabase(tmp);
    sync(tmp);
    publish(tmp, target, options.overwrite ?? false);
  } finally {
    rmSync(tmp, { force: true });
  }
  return { file: target, bytes: statSync(target).size, durationMs: performance.now() - started };
}

/**
 * Puts the backup `backup` in place as the database `target`, after checking it. Refuses while a
 * Tally holds `target` (its writer lock), and refuses an existing `target` unless `overwrite`. The
 * old database's WAL goes first: left beside the restored file it would be replayed into it.
 */
export function restoreDatabase(backup: string, target: string, options: { overwrite?: boolean } = {}): BackupResult {
  const started = performance.now();
  verifyDatabase(backup);
  mkdirSync(dirname(target), { recursive: true });
  let lock: Database.Database;
  try {
    lock = holdWriterLock(target);
  } catch (err) {
    throw new Error(`${target} is in use by a running Tally: stop it before restoring`, { cause: err });
  }
  try {
    const existing = [target, `${target}-wal`].filter((f) => existsSync(f));
    if (existing.length > 0 && !options.overwrite) throw new Error(`${existing[0]} exists; pass --force to replace the database with the backup`);
    const tmp = temporaryName(target);
    try {
      copyFileSync(backup, tmp);
      sync(tmp);
      for (const f of [`${target}-wal`, `${target}-shm`]) rmSync(f, { force: true });
      renameSync(tmp, target);
      sync(dirname(target));
    } finally {
      rmSync(tmp, { force: true });
    }
  } finally {
    lock.close();
  }
  return { file: target, bytes: statSync(target).size, durationMs: performance.now() - started };
}
