import type Database from 'better-sqlite3';
import type { ChunkTable } from './chunk-table.js';
import type { ReadingColumns } from './columns.js';
import type { DeviceDirectory, DeviceState } from './devices.js';
import { entryReadings, type Journal } from './journal.js';
import type { PendingEntry, PendingReadings } from './pending.js';

/**
 * One append, one transaction: each reading is checked against what its device has (first write
 * wins) and the new ones are filed, in the journal or, for a long in-order run of one device,
 * straight into its chunks.
 *
 * A reading newer than anything its device has (the in-order case) needs no lookup; an older one
 * is looked up among the pending readings and then in the chunks whose time range covers it.
 */
export class Appender {
  /** The append transaction, wrapped once: better-sqlite3 builds wrapper functions per `transaction()` call. */
  private readonly tx: (cols: ReadingColumns, entry: PendingEntry, stored: Uint8Array) => void;

  constructor(
    db: Database.Database,
    private readonly pending: PendingReadings,
    private readonly chunks: ChunkTable,
    private readonly devices: DeviceDirectory,
    private readonly journal: Journal,
    /** Runs of one device at least this long, in order and new, skip the journal. */
    private readonly directRunReadings: number,
  ) {
    this.tx = db.transaction((cols: ReadingColumns, entry: PendingEntry, stored: Uint8Array) => this.file(cols, entry, stored)).immediate;
  }

  /**
   * Commits a batch as journal entry `seq`; returns 1 (stored) or 0 (duplicate) per reading, and
   * the entry (which stored nothing when every reading was a duplicate or written directly).
   */
  append(cols: ReadingColumns, seq: number): { stored: Uint8Array; entry: PendingEntry } {
    this.chunks.startAppend();
    const stored = new Uint8Array(cols.tsUs.length);
    const entry = this.pending.begin(seq, entryReadings(cols));
    try {
      this.tx(cols, entry, stored);
    } catch (err) {
      this.devices.forget();
      this.pending.abort(entry);
      throw err;
    }
    this.pending.finish(entry);
    return { stored, entry };
  }

  /** Files the batch's new readings in `entry` and the journal (0 as the key of a duplicate, which replay and compaction skip). */
  private file(cols: ReadingColumns, entry: PendingEntry, stored: Uint8Array): void {
    const { devices, runEnds, tsUs } = cols;
    let i = 0;
    for (let run = 0; run < devices.length; run++) {
      const device = this.devices.get(devices[run]!);
      const end = runEnds[run]!;
      if (end - i >= this.directRunReadings && this.inOrderAndNew(device, tsUs, i, end)) {
        this.writeDirect(device, entry, i, end);
        stored.fill(1, i, end);
        i = end;
        continue;
      }
      for (; i < end; i++) {
        if (!this.isNew(device, tsUs[i]!)) continue;
        this.pending.add(entry, i, device.key);
        stored[i] = 1;
      }
    }
    if (entry.stored > 0) this.journal.append(entry);
  }

  /** At least the device's newest timestamp, in chunks or pending: anything later is new. */
  private newestBound(device: DeviceState): number {
    return Math.max(device.latestTs ?? -Infinity, this.pending.maxTs(device.key));
  }

  /** Whether readings `start` to `end` come in increasing time order, all newer than anything the device has. */
  private inOrderAndNew(device: DeviceState, tsUs: Float64Array, start: number, end: number): boolean {
    let previous = this.newestBound(device);
    for (let i = start; i < end; i++) {
      if (!(tsUs[i]! > previous)) return false;
      previous = tsUs[i]!;
    }
    return true;
  }

  /**
   * The direct path: a long in-order run of one device goes into its chunks and summary in this
   * commit, its lines copied once, instead of into the journal now and into chunks at compaction.
   * Nothing of it is pending, so it is neither journaled nor replayed.
   */
  private writeDirect(device: DeviceState, entry: PendingEntry, start: number, end: number): void {
    const base = start === 0 ? 0 : entry.ends[start - 1]!;
    const ends = entry.ends.slice(start, end);
    for (let k = 0; k < ends.length; k++) ends[k] = ends[k]! - base;
    this.chunks.write(device.key, entry.ts.subarray(start, end), entry.counts.subarray(start, end), entry.text.subarray(base, entry.ends[end - 1]!), ends);
    device.latestTs = entry.ts[end - 1]!;
  }

  /** Whether the device has no reading at `tsUs` yet (stored, pending, or earlier in this batch). */
  private isNew(device: DeviceState, tsUs: number): boolean {
    if (tsUs > this.newestBound(device)) return true;
    if (this.pending.has(device.key, tsUs)) return false;
    return !this.chunks.has(device.key, tsUs);
  }
}
