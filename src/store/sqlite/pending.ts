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
 * One committed journal entry: the readings it stored. Their chunk lines stay inside the journal
 * text (`text.slice(starts[i], ends[i])`): an entry lives until compaction, long enough for the
 * garbage collector to move it to the old generation, where one string per entry costs far less
 * to keep than one per reading.
 */
export interface PendingEntry {
  /** The journal row's seq. */
  readonly seq: number;
  /** The journal row's text, set once the entry is complete. */
  text: string;
  readonly keys: number[];
  readonly ts: number[];
  /** NaN: no count. */
  readonly counts: number[];
  readonly starts: number[];
  readonly ends: number[];
}

function emptyEntry(seq: number): PendingEntry {
  return { seq, text: '', keys: [], ts: [], counts: [], starts: [], ends: [] };
}

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
  begin(seq: number): PendingEntry {
    const entry = emptyEntry(seq);
    this.entries.push(entry);
    return entry;
  }

  /** A reading whose chunk line will be `entry.text.slice(start, end)`. */
  add(entry: PendingEntry, deviceKey: number, tsUs: number, count: number, start: number, end: number): void {
    entry.keys.push(deviceKey);
    entry.ts.push(tsUs);
    entry.counts.push(count);
    entry.starts.push(start);
    entry.ends.push(end);
    this.count++;
    this.note(deviceKey, tsUs);
  }

  /** The batch committed with journal text `text`; an entry that stored nothing is not kept. */
  finish(entry: PendingEntry, text: string): void {
    entry.text = text;
    if (entry.keys.length === 0 && this.entries.at(-1) === entry) this.entries.pop();
  }

  /** The batch rolled back: its readings were never stored. */
  abort(entry: PendingEntry): void {
    if (this.entries.at(-1) === entry) {
      this.entries.pop();
      this.count -= entry.keys.length;
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
    for (const entry of this.entries.slice(0, n)) this.count -= entry.keys.length;
    this.entries = this.entries.slice(n);
    this.rebuild();
  }

  /** Ranges from what is pending now (usually little: compaction takes the oldest first). */
  private rebuild(): void {
    this.byDevice.clear();
    this.indexed = false;
    for (const entry of this.entries) for (let i = 0; i < entry.keys.length; i++) this.note(entry.keys[i]!, entry.ts[i]!);
  }

  private buildIndex(): void {
    for (const device of this.byDevice.values()) device.instants = new Set();
    for (const entry of this.entries) {
      for (let i = 0; i < entry.keys.length; i++) this.byDevice.get(entry.keys[i]!)!.instants!.add(entry.ts[i]!);
    }
    this.indexed = true;
  }
}
