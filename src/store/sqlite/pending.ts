/**
 * Readings committed to the journal but not yet compacted into chunks, kept on the writer thread:
 * in commit order (compaction takes the oldest) and indexed per device (deduplication asks whether
 * a device already has a reading at an instant). Its size is bounded by the writer, which compacts
 * whenever it grows past its threshold.
 */

/** One committed journal entry: the readings it stored, column by column. */
export interface PendingEntry {
  /** The journal row's seq. */
  readonly seq: number;
  readonly keys: number[];
  readonly ts: number[];
  readonly counts: (number | null)[];
  readonly texts: (string | null)[];
  readonly payloads: (string | null)[];
}

export function emptyEntry(seq: number): PendingEntry {
  return { seq, keys: [], ts: [], counts: [], texts: [], payloads: [] };
}

interface DevicePending {
  readonly instants: Set<number>;
  /** Greatest instant pending for the device (may linger after compaction: it is only an upper bound). */
  maxTs: number;
}

export class PendingReadings {
  private entries: PendingEntry[] = [];
  private readonly byDevice = new Map<number, DevicePending>();
  private count = 0;

  /** Readings pending. */
  get size(): number {
    return this.count;
  }

  /** Seq of the newest pending entry, or undefined when nothing is pending. */
  get lastSeq(): number | undefined {
    return this.entries.at(-1)?.seq;
  }

  /** Whether the device has a pending reading at `tsUs`. */
  has(deviceKey: number, tsUs: number): boolean {
    return this.byDevice.get(deviceKey)?.instants.has(tsUs) ?? false;
  }

  /** An upper bound of the device's pending instants (-Infinity when none). */
  maxTs(deviceKey: number): number {
    return this.byDevice.get(deviceKey)?.maxTs ?? -Infinity;
  }

  /**
   * Indexes one reading of an entry being built, so later readings of the same batch see it.
   * Call `push` once the entry commits, or `forget` if it rolled back.
   */
  note(deviceKey: number, tsUs: number): void {
    let device = this.byDevice.get(deviceKey);
    if (device === undefined) {
      device = { instants: new Set(), maxTs: tsUs };
      this.byDevice.set(deviceKey, device);
    } else if (tsUs > device.maxTs) {
      device.maxTs = tsUs;
    }
    device.instants.add(tsUs);
  }

  /** Adds a committed entry whose readings were `note`d. */
  push(entry: PendingEntry): void {
    if (entry.keys.length === 0) return;
    this.entries.push(entry);
    this.count += entry.keys.length;
  }

  /** Undoes the `note`s of an entry that did not commit: the index is rebuilt from what did. */
  forget(): void {
    this.byDevice.clear();
    for (const entry of this.entries) for (let i = 0; i < entry.keys.length; i++) this.note(entry.keys[i]!, entry.ts[i]!);
  }

  /** The oldest entries holding at least `minReadings` readings (all of them if fewer), not removed. */
  oldest(minReadings: number): PendingEntry[] {
    let taken = 0;
    let n = 0;
    while (n < this.entries.length && taken < minReadings) taken += this.entries[n++]!.keys.length;
    return this.entries.slice(0, n);
  }

  /** Removes the oldest `n` entries, once they are compacted. */
  drop(n: number): void {
    for (const entry of this.entries.slice(0, n)) {
      this.count -= entry.keys.length;
      for (let i = 0; i < entry.keys.length; i++) {
        const device = this.byDevice.get(entry.keys[i]!);
        if (device === undefined) continue;
        device.instants.delete(entry.ts[i]!);
        if (device.instants.size === 0) this.byDevice.delete(entry.keys[i]!);
      }
    }
    this.entries = this.entries.slice(n);
  }
}
