/**
 * Sealing text chunks after they stop taking appends (src/store/sqlite/seal-chunks.ts): off the
 * commit that replaced them, when the writer is idle or the backlog is past its bound, in runs of a
 * device's chunks; what the chunks hold never changes.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, test } from 'vitest';
import type { Reading } from '../../src/domain/reading.js';
import { decodeChunk, type ChunkData } from '../../src/store/sqlite/chunk.js';
import { toColumns } from '../../src/store/sqlite/columns.js';
import { countStats } from '../../src/store/sqlite/count-stats.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { SqliteWriter } from '../../src/store/sqlite/writer.js';
import { tempDir } from '../helpers.js';

const BASE = Date.UTC(2024, 0, 1) * 1000;
const SECOND = 1_000_000;
const DEVICES = 10;
const reading = (deviceId: string, s: number): Reading => ({
  deviceId,
  tsUs: BASE + s * SECOND,
  tsText: s % 2 === 0 ? new Date((BASE + s * SECOND) / 1000).toISOString() : null,
  count: s % 7 === 0 ? null : 1 + (s % 5),
  payload: JSON.stringify({ temp: 15 + (s % 100) / 10, s }),
});
/** A fleet reporting together: `steps` seconds from `from`, each device once a second. */
const fleetBatch = (from: number, steps: number): Reading[] =>
  Array.from({ length: steps * DEVICES }, (_, i) => reading(`d${i % DEVICES}`, from + Math.floor(i / DEVICES)));

const WAITING = `SELECT count(*) FROM chunks c WHERE typeof(data) = 'text'
  AND id <> (SELECT id FROM chunks n WHERE n.device_key = c.device_key ORDER BY last_ts_us DESC LIMIT 1)`;

interface ChunkRow {
  id: number;
  key: number;
  n: number;
  data: ChunkData;
  counted: number | null;
  sum: number | null;
  min: number | null;
  max: number | null;
}

/** Every chunk, with what it decodes to. */
function chunksOf(file: string): ChunkRow[] {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare('SELECT id, device_key AS key, n, data, counted, count_sum AS sum, count_min AS min, count_max AS max FROM chunks ORDER BY device_key, first_ts_us, id')
      .all() as ChunkRow[];
  } finally {
    db.close();
  }
}

/** Each device's readings, from its chunks, in time order. */
function readingsOf(chunks: ChunkRow[]): Map<number, unknown[]> {
  const out = new Map<number, unknown[]>();
  for (const c of chunks) {
    const list = out.get(c.key) ?? [];
    list.push(...decodeChunk(c.data));
    out.set(c.key, list);
  }
  for (const list of out.values()) (list as { tsUs: number }[]).sort((a, b) => a.tsUs - b.tsUs);
  return out;
}

function waitingCount(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(WAITING).pluck().get() as number;
  } finally {
    db.close();
  }
}

function withWriter(body: (writer: () => SqliteWriter, file: string, reopen: () => void) => void): void {
  const { dir, cleanup } = tempDir('tally-sealing-');
  const file = join(dir, 'tally.db');
  const open = () => new SqliteWriter({ file, synchronous: 'NORMAL', cacheMiB: 8, compactRows: 1 });
  let writer = open();
  try {
    body(
      () => writer,
      file,
      () => {
        writer.close({ compact: false }); // as a crash leaves it: nothing compacted or sealed at close
        writer = open();
      },
    );
  } finally {
    writer.close();
    cleanup();
  }
}

/** Writes `rounds` fleet batches of `steps` seconds, each compacted at once, as the writer thread would under load. */
function load(writer: SqliteWriter, from: number, rounds: number, steps: number): void {
  for (let r = 0; r < rounds; r++) {
    writer.append(toColumns(fleetBatch(from + r * steps, steps)));
    writer.compactAll();
  }
}

describe('sealing text chunks', () => {
  test('a chunk that stops taking appends waits, unsealed, off the commit; sealing seals runs of a device\'s chunks, whose readings and count stats are unchanged', () => {
    withWriter((writer, file) => {
      load(writer(), 0, 100, 5); // 500 readings a device, ~50 bytes each: several full text chunks per device
      const before = chunksOf(file);
      const waiting = waitingCount(file);
      expect(waiting).toBeGreaterThanOrEqual(DEVICES * 5);
      expect(writer().sealBacklog).toBeGreaterThan(0);

      let steps = 0;
      while (writer().sealBacklog > 0) {
        writer().sealStep();
        steps++;
      }
      expect(steps).toBeLessThan(10);
      expect(waitingCount(file)).toBe(0);
      const after = chunksOf(file);
      expect(readingsOf(after)).toEqual(readingsOf(before));
      // Runs: far fewer sealed chunks than text chunks sealed, each holding more than a text chunk can.
      const sealed = after.filter((c) => typeof c.data !== 'string');
      expect(sealed.length).toBeLessThanOrEqual(waiting / 3);
      expect(Math.max(...sealed.map((c) => c.n))).toBeGreaterThan(Math.max(...before.map((c) => c.n)));
      for (const c of after) {
        const readings = decodeChunk(c.data);
        expect(c.n).toBe(readings.length);
        const stats = countStats(Float64Array.from(readings, (r) => r.count ?? NaN), 0, readings.length);
        expect([c.counted, c.sum, c.min, c.max]).toEqual([stats.counted, stats.sum, stats.min, stats.max]);
      }
      // Only each device's newest chunk is left as text, and it keeps taking appends.
      expect(after.filter((c) => typeof c.data === 'string').length).toBe(DEVICES);
      load(writer(), 500, 1, 5);
      expect(chunksOf(file).filter((c) => typeof c.data === 'string').length).toBe(DEVICES);
    });
  });

  test('overlapping chunks (out-of-order writes) are sealed each alone, never merged out of order', () => {
    withWriter((writer, file) => {
      load(writer(), 1000, 40, 5);
      // An older run for every device, written after: its chunks overlap nothing newer but come later.
      load(writer(), 0, 40, 5);
      load(writer(), 1200, 40, 5);
      const before = chunksOf(file);
      while (writer().sealBacklog > 0) writer().sealStep();
      expect(waitingCount(file)).toBe(0);
      expect(readingsOf(chunksOf(file))).toEqual(readingsOf(before));
      for (const c of chunksOf(file)) {
        const ts = decodeChunk(c.data).map((r) => r.tsUs);
        for (let i = 1; i < ts.length; i++) expect(ts[i]).toBeGreaterThan(ts[i - 1]!);
      }
    });
  });

  test('chunks left waiting by a crash are found again on open and sealed', () => {
    withWriter((writer, file, reopen) => {
      load(writer(), 0, 60, 5);
      const waiting = waitingCount(file);
      expect(waiting).toBeGreaterThan(0);
      const before = readingsOf(chunksOf(file));
      reopen();
      expect(waitingCount(file)).toBe(waiting);
      expect(writer().sealBacklog).toBeGreaterThan(0);
      while (writer().sealBacklog > 0) writer().sealStep();
      expect(waitingCount(file)).toBe(0);
      expect(readingsOf(chunksOf(file))).toEqual(before);
    });
  });

  test('the store seals what waits once the writer is idle, and keeps up with commits when its backlog is past the bound', async () => {
    for (const bound of [undefined, 0]) {
      const { dir, cleanup } = tempDir('tally-sealing-store-');
      const file = join(dir, 'tally.db');
      const store = await SqliteStore.open({ file, synchronous: 'NORMAL', cacheMiB: 8, compactRows: 1, sealBacklogBytes: bound });
      try {
        for (let b = 0; b < 60; b++) await store.appendBatch(fleetBatch(b * 5, 5));
        if (bound === 0) {
          // Sealed a step after each commit (the last step may still be on its way), not left to pile up.
          expect(waitingCount(file)).toBeLessThanOrEqual(2 * DEVICES);
        }
        // Idle: everything waiting gets sealed.
        const deadline = Date.now() + 10_000;
        while (waitingCount(file) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
        expect(waitingCount(file)).toBe(0);
        const items = (await store.deviceReadings('d3', { order: 'asc' })).items;
        expect(items.map((r) => r.tsUs)).toEqual(Array.from({ length: 300 }, (_, s) => BASE + s * SECOND));
      } finally {
        await store.close();
        cleanup();
      }
    }
  });
});
