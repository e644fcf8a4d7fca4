import type { PendingEntry } from './pending.js';

/**
 * How a compaction round is planned: everything pending, grouped by device in typed arrays, the
 * devices in key order and cut into slices that each commit as one transaction.
 */

/**
 * A round's readings grouped by device, in typed arrays (no object or array per reading): devices
 * in ascending key order, each device's readings contiguous and in timestamp order.
 */
export interface Grouped {
  /** Per device. */
  readonly keys: Int32Array;
  /** Per device, and one more: device `d`'s readings are `starts[d]` to `starts[d + 1]`. */
  readonly starts: Uint32Array;
  /** Per device: bytes of its chunk lines. */
  readonly bytes: Float64Array;
  /** Per reading: its timestamp, its count (NaN: none), the index of its entry in the round, and its line's byte range in that entry's text. */
  readonly ts: Float64Array;
  readonly counts: Float64Array;
  readonly entry: Uint32Array;
  readonly from: Uint32Array;
  readonly to: Uint32Array;
}

/** A compaction round: the pending entries it covers, grouped by device, the devices cut into slices. */
export interface Round {
  /** Seq of its newest entry. */
  readonly through: number;
  /** The (oldest) pending entries it covers. */
  readonly entries: readonly PendingEntry[];
  readonly grouped: Grouped;
  /** Device index after each slice (slices are consecutive runs of devices). */
  readonly sliceEnds: number[];
  /** Index of the next slice to compact. */
  next: number;
}

/**
 * Bounds of a compaction slice, which bound how long an append can wait behind compaction: a step
 * costs about the same per device touched (a chunk row and a summary row) plus a little per
 * reading; `npm run bench:writer` reports the slice steps' times.
 */
const SLICE_DEVICES = 250;
const SLICE_READINGS = 6_000;

/** A round over `entries`, for the devices with keys above `doneKey`. */
export function makeRound(entries: readonly PendingEntry[], doneKey: number): Round {
  const grouped = groupByDevice(entries, doneKey);
  const sliceEnds: number[] = [];
  const devices = grouped.keys.length;
  for (let d = 0, sliceStart = 0; d < devices; d++) {
    const devicesIn = d + 1 - sliceStart;
    const readingsIn = grouped.starts[d + 1]! - grouped.starts[sliceStart]!;
    if (d + 1 === devices || devicesIn >= SLICE_DEVICES || readingsIn + grouped.starts[d + 2]! - grouped.starts[d + 1]! > SLICE_READINGS) {
      sliceEnds.push(d + 1);
      sliceStart = d + 1;
    }
  }
  if (sliceEnds.length === 0) sliceEnds.push(0); // nothing left to move: one empty slice ends the round
  return { through: entries[entries.length - 1]!.seq, entries, grouped, sliceEnds, next: 0 };
}

/** The readings of `entries` of devices with keys above `after`, grouped by device (see `Grouped`). */
function groupByDevice(entries: readonly PendingEntry[], after: number): Grouped {
  // Pass 1: each device's slot (in order of appearance) and how many readings it has.
  const slotOf = new Map<number, number>();
  const slotKeys: number[] = [];
  const sizes: number[] = [];
  let room = 0;
  for (const { keys } of entries) room += keys.length;
  // Each kept reading's slot, in the order pass 2 meets them (room for every reading, skipped ones too).
  const slotAt = new Int32Array(room);
  let idx = 0;
  for (const { keys } of entries) {
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (key === 0 || key <= after) continue;
      let slot = slotOf.get(key);
      if (slot === undefined) {
        slot = slotKeys.length;
        slotOf.set(key, slot);
        slotKeys.push(key);
        sizes.push(0);
      }
      sizes[slot] = sizes[slot]! + 1;
      slotAt[idx++] = slot;
    }
  }
  const total = idx;
  // Devices in key order, and where each one's readings go.
  const devices = slotKeys.length;
  const order = slotKeys.map((_, slot) => slot).sort((a, b) => slotKeys[a]! - slotKeys[b]!);
  const rank = new Uint32Array(devices);
  const keys = new Int32Array(devices);
  const starts = new Uint32Array(devices + 1);
  for (let d = 0; d < devices; d++) {
    rank[order[d]!] = d;
    keys[d] = slotKeys[order[d]!]!;
    starts[d + 1] = starts[d]! + sizes[order[d]!]!;
  }
  // Pass 2: every reading into its device's place.
  const grouped: Grouped = {
    keys,
    starts,
    bytes: new Float64Array(devices),
    ts: new Float64Array(total),
    counts: new Float64Array(total),
    entry: new Uint32Array(total),
    from: new Uint32Array(total),
    to: new Uint32Array(total),
  };
  const cursor = starts.slice(0, devices);
  const newest = new Float64Array(devices).fill(-Infinity);
  const unsorted = new Uint8Array(devices);
  idx = 0;
  for (let e = 0; e < entries.length; e++) {
    const { keys: entryKeys, ts, counts, ends } = entries[e]!;
    for (let i = 0; i < entryKeys.length; i++) {
      const key = entryKeys[i]!;
      if (key === 0 || key <= after) continue;
      const d = rank[slotAt[idx++]!]!;
      const p = cursor[d]!++;
      const t = ts[i]!;
      const from = i === 0 ? 0 : ends[i - 1]!;
      grouped.ts[p] = t;
      grouped.entry[p] = e;
      grouped.from[p] = from;
      grouped.to[p] = ends[i]!;
      grouped.bytes[d] = grouped.bytes[d]! + ends[i]! - from;
      grouped.counts[p] = counts[i]!;
      if (t < newest[d]!) unsorted[d] = 1;
      else newest[d] = t;
    }
  }
  for (let d = 0; d < devices; d++) if (unsorted[d] === 1) sortDevice(grouped, starts[d]!, starts[d + 1]!);
  return grouped;
}

/** Puts readings `start` to `end` of `grouped` (one device's) in timestamp order. */
function sortDevice(grouped: Grouped, start: number, end: number): void {
  const { ts, counts, entry, from, to } = grouped;
  const order = Array.from({ length: end - start }, (_, k) => start + k).sort((a, b) => ts[a]! - ts[b]!);
  const copies = [ts.slice(start, end), counts.slice(start, end), entry.slice(start, end), from.slice(start, end), to.slice(start, end)] as const;
  order.forEach((source, k) => {
    ts[start + k] = copies[0][source - start]!;
    counts[start + k] = copies[1][source - start]!;
    entry[start + k] = copies[2][source - start]!;
    from[start + k] = copies[3][source - start]!;
    to[start + k] = copies[4][source - start]!;
  });
}
