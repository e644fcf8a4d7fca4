import { ConfigError } from '../../domain/errors.js';

/**
 * Options of the embedded SQLite store: settings of this backend only, parsed once and frozen
 * (`sqliteConfig`). The app names the file through TALLY_STORE=sqlite:<path>.
 */
export interface SqliteStoreConfig {
  /** Path of the database file (a real file: the writer thread and the readers share it). */
  readonly file: string;
  /**
   * SQLite `synchronous` setting of the writer's connection. FULL (default) fsyncs the WAL on every
   * commit, so an acknowledged reading survives power loss; NORMAL survives a process crash but not
   * power loss.
   */
  readonly synchronous: 'FULL' | 'NORMAL';
  /** Page cache of the writer, in MiB: enough to keep the hot index pages of many devices. */
  readonly cacheMiB: number;
  /**
   * Journal backlog (readings) at which the writer compacts them into per-device chunks, and the
   * least one compaction step moves. Larger steps make fuller chunks but pause ingest longer.
   */
  readonly compactRows: number;
  /**
   * A batch's run of at least this many readings of one device, in time order and newer than all
   * the device has, is written straight into its chunks in the commit, not through the journal
   * (default `DIRECT_RUN_READINGS`). Tests set it low to take that path often.
   */
  readonly directRunReadings?: number;
  /**
   * Bytes of text chunks waiting to be sealed past which sealing keeps up with commits instead of
   * waiting for an idle writer (default `SEAL_BACKLOG_BYTES`, seal-chunks.ts). Tests set it low.
   */
  readonly sealBacklogBytes?: number;
  /** Reader threads, each with its own connection (default `DEFAULT_READERS`). */
  readonly readers?: number;
}

/** One per core of the machines Tally is sized for: a long query occupies one, the other answers. */
export const DEFAULT_READERS = 2;

/**
 * Readings in one device's run below which the journal is cheaper: a direct write costs a chunk
 * row and a summary row in the commit, shared by the run's readings.
 */
export const DIRECT_RUN_READINGS = 256;

export const SQLITE_DEFAULTS = { synchronous: 'FULL', cacheMiB: 64, compactRows: 100_000 } as const;

/** A complete, checked and frozen SQLite configuration from a file and any settings to override. */
export function sqliteConfig(options: { file: string } & Partial<SqliteStoreConfig>): SqliteStoreConfig {
  const config = { ...SQLITE_DEFAULTS, ...options };
  if (config.file === '' || config.file === ':memory:') {
    throw new ConfigError('the SQLite store needs a file path (the writer thread and the readers share it), e.g. sqlite:./data/tally.db');
  }
  if (config.synchronous !== 'FULL' && config.synchronous !== 'NORMAL') throw new ConfigError(`synchronous must be FULL or NORMAL, got ${String(config.synchronous)}`);
  for (const key of ['cacheMiB', 'compactRows'] as const) {
    if (!Number.isInteger(config[key]) || config[key] < 1) throw new ConfigError(`${key} must be a positive whole number, got ${config[key]}`);
  }
  return Object.freeze(config);
}
