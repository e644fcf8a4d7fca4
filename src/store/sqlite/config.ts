/** Options for the embedded SQLite store. */
export interface SqliteStoreConfig {
  /** Path of the database file (a real file: the writer thread and the readers share it). */
  readonly file: string;
  /**
   * SQLite `synchronous` setting. FULL (default) fsyncs the WAL on every commit, so an acknowledged
   * reading survives power loss; NORMAL survives a process crash but not power loss.
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
}

/**
 * Readings in one device's run below which the journal is cheaper: a direct write costs a chunk
 * row and a summary row in the commit, shared by the run's readings.
 */
export const DIRECT_RUN_READINGS = 256;
