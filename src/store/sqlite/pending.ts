/**
 * Readings committed to the journal but not yet compacted into chunks, kept on the writer thread:
 * in commit order (compaction takes the oldest) and indexed per device (deduplication asks whether
 * a device already has a reading at an instant). Its size is bounded by the writer, which compacts
 * whenever it grows past its threshold.
 *
 * The per-device index is cheap on the hot path: the range of a device's pending instants is kept
 * as readings arrive, and the sets of instants are built (in one pass over everything pending) only
 * when a reading falls inside a range, which takes an out-of-order or duplicate reading.
 */

/**
 * One committed journal entry: a batch's readings as the writer thread received them (typed arrays
 * and the UTF-8 text of their chunk lines), with the device key of each reading it stored (0 for a
 * duplicate it left out). Nothing is kept per reading but numbers in typed arrays: an entry lives
 * until compaction, long enough for the garbage collector to move it to the old generation.
 */
export interface PendingEntry {
  /** The journal row's seq. */
  readonly seq: number;
  /** Device key of each reading; 0: not stored (a duplicate). */
  readonly keys: Int32Array;
  readonly ts: Float64Array;
  /** NaN: no count. */
  readonly counts: Float64Array;
  /** The readings' chunk lines, UTF-8, one after the other. */
  readonly text: Buffer;
  /** Byte offset after each reading's line in `text`. */
  readonly ends: Uint32Array;
  /** How many readings it stored. */
  stored: number;
}

/** A batch's readings as an entry begins: none of them stored yet. */
export type EntryReadings = Pick<PendingEntry, 'ts' | 'counts' | 'text' | 'ends'>;

interface DevicePending {
  /** Bounds of the device's pending instants (conservative: wider never hurts). */
  min: number;
  max: number;
  /** Its pending instants, while the sets are built. */
  instants: Set<number> | undefined;
}

export class PendingReadings {
  private entries: PendingEntry[] = [];
  private readonly byDevice = new Map<number, DevicePending>();
  /** Whether every device's `instants` set is built and kept up to date. */
  private indexed = false;
  private count = 0;

  /** Readings pending. */
  get size(): number {
    return this.count;
  }

  /** Whether the device has a pending reading at `tsUs`. */
  has(deviceKey: number, tsUs: number): boolean {
    const device = this.byDevice.get(deviceKey);
    if (device === undefined || tsUs < device.min || tsUs > device.max) return false;
    if (!this.indexed) this.buildIndex();
    return device.instants!.has(tsUs);
  }

  /** An upper bound of the device's pending instants (-Infinity when none). */
  maxTs(deviceKey: number): number {
    return this.byDevice.get(deviceKey)?.max ?? -Infinity;
  }

  /**
   * Starts the entry of a batch being written; its readings are pending (and indexed) as they are
   * added, so later readings of the same batch see them. End it with `finish` once the batch
   * commits, or `abort` if it rolled back.
   */
  begin(seq: number, readings: EntryReadings): PendingEntry {
    const entry: PendingEntry = { seq, keys: new Int32Array(readings.ts.length), stored: 0, ...readings };
    this.entries.push(entry);
    return entry;
  }

  /** Reading `i` of the entry is stored, for the device `deviceKey`. */
  add(entry: PendingEntry, i: number, deviceKey: number): void {
    entry.keys[i] = deviceKey;
    entry.stored++;
    this.count++;
    this.note(deviceKey, entry.ts[i]!);
  }

  /** The batch committed; an entry that stored nothing is not kept. */
  finish(entry: PendingEntry): void {
    if (entry.stored === 0 && this.entries.at(-1) === entry) this.entries.pop();
  }

  /** The batch rolled back: its readings were never stored. */
  abort(entry: PendingEntry): void {
    if (this.entries.at(-1) === entry) {
      this.entries.pop();
      this.count -= entry.stored;
    }
    this.rebuild();
  }

  private note(deviceKey: number, tsUs: number): void {
    const device = this.byDevice.get(deviceKey);
    if (device === undefined) {
      this.byDevice.set(deviceKey, { min: tsUs, max: tsUs, instants: this.indexed ? new Set([tsUs]) : undefined });
      return;
    }
    if (tsUs > device.max) device.max = tsUs;
    else if (tsUs < device.min) device.min = tsUs;
    device.instants?.add(tsUs);
  }

  /** The entries up to seq `seq` (the oldest ones), not removed. */
  through(seq: number): PendingEntry[] {
    let n = 0;
    while (n < this.entries.length && this.entries[n]!.seq <= seq) n++;
    return this.entries.slice(0, n);
  }

  /** Removes the oldest `n` entries, once they are compacted. */
  drop(n: number): void {
    for (const entry of this.entries.slice(0, n)) this.count -= entry.stored;
    this.entries = this.entries.slice(n);
    this.rebuild();
  }

  /** Ranges from what is pending now (usually little: compaction takes the oldest first). */
  private rebuild(): void {
    this.byDevice.clear();
    this.indexed = false;
    for (const entry of this.entries) {
      for (let i = 0; i < entry.keys.length; i++) if (entry.keys[i] !== 0) this.note(entry.keys[i]!, entry.ts[i]!);
    }
  }

  private buildIndex(): void {
    for (const device of this.byDevice.values()) device.instants = new Set();
    for (const entry of this.entries) {
      for (let i = 0; i < entry.keys.length; i++) if (entry.keys[i] !== 0) this.byDevice.get(entry.keys[i]!)!.instants!.add(entry.ts[i]!);
    }
    this.indexed = true;
  }
}
