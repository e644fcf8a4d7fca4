import type Database from 'better-sqlite3';
import type { ChunkTable } from './chunk-table.js';
import { makeRound, type Grouped, type Round } from './compaction-plan.js';
import type { DeviceDirectory } from './devices.js';
import type { Journal } from './journal.js';
import type { PendingEntry, PendingReadings } from './pending.js';

/**
 * Moves journaled readings into per-device chunks and summaries. A round takes everything pending,
 * grouped by device; each step compacts one slice of its devices in one transaction, so an append
 * waiting on the writer thread waits for one slice, never a round. The round's last slice also
 * deletes its entries from the journal. A failed step changes nothing and can be retried.
 */
export class Compactor {
  private round: Round | undefined;
  /** Seq through which every journaled reading is in chunks. */
  private done = 0;
  /** The slice transaction, wrapped once: better-sqlite3 builds wrapper functions per `transaction()` call. */
  private readonly sliceTx: (round: Round, first: number, end: number, last: boolean) => void;

  constructor(
    db: Database.Database,
    private readonly pending: PendingReadings,
    private readonly chunks: ChunkTable,
    private readonly devices: DeviceDirectory,
    journal: Journal,
  ) {
    this.sliceTx = db.transaction((round: Round, first: number, end: number, last: boolean) => {
      for (let d = first; d < end; d++) this.compactDevice(round.grouped, d, round.entries);
      if (last) journal.roundDone(round.through);
      else journal.saveProgress(round.through, round.grouped.keys[end - 1]!);
    }).immediate;
  }

  /** Seq of the newest journal entry whose readings are all in chunks. */
  get compactedSeq(): number {
    return this.done;
  }

  /** Whether a round is under way (it ends after its last slice). */
  get compacting(): boolean {
    return this.round !== undefined;
  }

  /** One slice of the current round (starting one over everything pending if none is under way); returns how many readings moved. */
  step(): number {
    const round = this.round ?? this.startRound();
    if (round === undefined) return 0;
    const { grouped, sliceEnds } = round;
    const first = round.next === 0 ? 0 : sliceEnds[round.next - 1]!;
    const end = sliceEnds[round.next]!;
    const last = round.next === sliceEnds.length - 1;
    try {
      this.sliceTx(round, first, end, last);
    } catch (err) {
      this.devices.forget();
      throw err;
    }
    for (let d = first; d < end; d++) this.devices.noteLatest(grouped.keys[d]!, grouped.ts[grouped.starts[d + 1]! - 1]!);
    const moved = grouped.starts[end]! - grouped.starts[first]!;
    round.next++;
    if (last) {
      this.pending.drop(round.entries.length);
      this.done = round.through;
      this.round = undefined;
    }
    return moved;
  }

  /** Compacts everything pending. */
  all(): void {
    while (this.pending.size > 0 || this.round !== undefined) this.step();
  }

  /** Resumes a round a crash interrupted, after the devices it had done, over the same entries. */
  resume(doneKey: number, through: number): void {
    this.startRound(doneKey, through);
  }

  /**
   * A round over every pending entry (through `through`): their readings grouped by device, devices
   * in key order, cut into slices; devices up to `doneKey` are left out (a resumed round's).
   */
  private startRound(doneKey = -Infinity, through = Infinity): Round | undefined {
    const entries = this.pending.through(through);
    if (entries.length === 0) return undefined;
    this.round = makeRound(entries, doneKey);
    return this.round;
  }

  private compactDevice(grouped: Grouped, d: number, entries: readonly PendingEntry[]): void {
    const { ts, entry, from, to } = grouped;
    const start = grouped.starts[d]!;
    const n = grouped.starts[d + 1]! - start;
    // The device's chunk lines, copied out of the entries' texts into one buffer, in timestamp order.
    const text = Buffer.allocUnsafe(grouped.bytes[d]!);
    const ends = new Uint32Array(n);
    let pos = 0;
    for (let r = 0; r < n; r++) {
      const source = entries[entry[start + r]!]!.text;
      const begin = from[start + r]!;
      const stop = to[start + r]!;
      // A short line costs less copied byte by byte than through Buffer.copy's call.
      if (stop - begin < 64) for (let b = begin; b < stop; b++) text[pos++] = source[b]!;
      else pos += source.copy(text, pos, begin, stop);
      ends[r] = pos;
    }
    this.chunks.write(grouped.keys[d]!, ts.subarray(start, start + n), grouped.counts.subarray(start, start + n), text, ends);
  }
}
