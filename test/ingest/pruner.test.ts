import { join } from 'node:path';
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import type { Reading } from '../../src/domain/reading.js';
import { RetentionWindow } from '../../src/domain/retention.js';
import { RetentionPruner } from '../../src/ingest/pruner.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { TelemetryStore } from '../../src/store/types.js';
import { tempDir } from '../helpers.js';

/**
 * The pruner's schedule: after `start()` it sweeps again every `intervalMs` on its own, so readings
 * that age out while it runs are deleted without anyone calling `sweep()`; after `stop()` it sweeps
 * no more. Driven through its public API against a real store, with the window's clock moved by
 * hand. Sweeps are observed through the store's `pruneBefore` calls (each sweep makes at least one).
 */

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const INTERVAL_MS = 20;
/** Long enough for many scheduled sweeps, short next to the test timeout. */
const WAIT = { timeout: 5_000, interval: 5 };

let dir: ReturnType<typeof tempDir>;
let store: SqliteStore;
let nowMs: number;
let window: RetentionWindow;
/** The cutoff of each `pruneBefore` call the pruner made, in order. */
let prunes: number[];
/** While set, each `pruneBefore` call waits for it before going to the store. */
let gate: Promise<void> | undefined;
let openGate: (() => void) | undefined;
let observed: TelemetryStore;
let errors: unknown[];
let pruner: RetentionPruner | undefined;

beforeEach(async () => {
  dir = tempDir('tally-pruner-');
  store = await SqliteStore.open({ file: join(dir.dir, 'tally.db'), synchronous: 'FULL', cacheMiB: 8, compactRows: 50_000 });
  nowMs = Date.UTC(2024, 0, 1);
  window = new RetentionWindow(HOUR_MS * 1000, '1h', () => nowMs);
  prunes = [];
  gate = undefined;
  errors = [];
  // The store as the pruner sees it, recording each delete batch it asks for.
  observed = new Proxy(store, {
    get(target, prop) {
      if (prop === 'pruneBefore') {
        return (beforeUs: number, limit: number) => {
          prunes.push(beforeUs);
          const held = gate;
          return held === undefined ? target.pruneBefore(beforeUs, limit) : held.then(() => target.pruneBefore(beforeUs, limit));
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
});

afterEach(async () => {
  gate = undefined;
  openGate?.(); // a test that failed while holding a sweep must not leave stop() waiting for it
  openGate = undefined;
  await pruner?.stop();
  pruner = undefined;
  await store.close();
  dir.cleanup();
});

/** `n` readings of `deviceId`, one a minute, the newest `ageMs` before the window's now. */
function readings(deviceId: string, n: number, ageMs: number): Reading[] {
  return Array.from({ length: n }, (_, i) => ({
    deviceId,
    tsUs: (nowMs - ageMs - (n - 1 - i) * MINUTE_MS) * 1000,
    tsText: null,
    count: 1,
    payload: null,
  }));
}

/** How many readings of the device the store holds (all of them carry a count). */
async function stored(deviceId: string): Promise<number> {
  const DAY_US = 86_400_000_000;
  const buckets = await store.aggregate(deviceId, {
    fromUs: Date.UTC(2023, 0, 1) * 1000,
    toUs: Date.UTC(2025, 0, 1) * 1000,
    everyUs: 1000 * DAY_US,
    field: { kind: 'count' },
  });
  return buckets.reduce((n, b) => n + b.count, 0);
}

/** Waits until the pruner has started at least `n` more delete batches than it had when called. */
async function sweepsAfterNow(n: number): Promise<void> {
  const from = prunes.length;
  await vi.waitFor(() => expect(prunes.length, `pruneBefore calls, ${from} before waiting: scheduled sweeps stopped coming`).toBeGreaterThanOrEqual(from + n), WAIT);
}

test('after start(), scheduled sweeps delete readings as they age out, again and again; after stop(), none run', async () => {
  pruner = new RetentionPruner(observed, window, { intervalMs: INTERVAL_MS, batchLimit: 2, onError: (e) => errors.push(e) });
  pruner.start();

  // Readings inside the window survive the sweeps that keep coming.
  expect(Array.from(await store.appendBatch(readings('first', 5, 10 * MINUTE_MS)))).toEqual([1, 1, 1, 1, 1]);
  await sweepsAfterNow(3);
  expect(await stored('first')).toBe(5);

  // Two hours later they are older than the window: a scheduled sweep deletes them.
  nowMs += 2 * HOUR_MS;
  await vi.waitFor(async () => expect(await stored('first'), 'readings older than the window left after scheduled sweeps').toBe(0), WAIT);
  expect(prunes.at(-1)).toBe(window.cutoffUs());
  // Deleted from history only: the device's totals are all-time.
  expect(await store.getDevice('first')).toMatchObject({ readingCount: 5, cumulativeCount: 5 });

  // The schedule goes on: readings written now age out in turn, and go the same way.
  await store.appendBatch(readings('second', 3, 5 * MINUTE_MS));
  await sweepsAfterNow(3);
  expect(await stored('second')).toBe(3);
  nowMs += 2 * HOUR_MS;
  await vi.waitFor(async () => expect(await stored('second'), 'the second batch of aged readings was not deleted').toBe(0), WAIT);

  // After stop(): no sweep at all, and readings older than the window stay.
  await pruner.stop();
  const before = prunes.length;
  await store.appendBatch(readings('after-stop', 3, 3 * HOUR_MS));
  await new Promise((resolve) => setTimeout(resolve, 15 * INTERVAL_MS));
  expect(prunes.length, 'pruneBefore calls after stop()').toBe(before);
  expect(await stored('after-stop')).toBe(3);
  expect(errors).toEqual([]);
});

test('stop() straight after start(): the first scheduled sweep never runs, nor any later one', async () => {
  await store.appendBatch(readings('old', 4, 2 * HOUR_MS));
  pruner = new RetentionPruner(observed, window, { intervalMs: INTERVAL_MS, batchLimit: 2, onError: (e) => errors.push(e) });
  pruner.start();
  await pruner.stop();
  await new Promise((resolve) => setTimeout(resolve, 15 * INTERVAL_MS));
  expect(prunes, 'pruneBefore calls after stop()').toEqual([]);
  expect(await stored('old')).toBe(4);
  expect(errors).toEqual([]);
});

test('stop() during a sweep: waits for its current batch, which is its last; no sweep afterwards', async () => {
  await store.appendBatch(readings('old', 4, 2 * HOUR_MS));
  gate = new Promise((resolve) => (openGate = resolve));
  pruner = new RetentionPruner(observed, window, { intervalMs: INTERVAL_MS, batchLimit: 2, onError: (e) => errors.push(e) });
  pruner.start();
  // The first scheduled sweep is in its first delete batch, held at the store.
  await vi.waitFor(() => expect(prunes).toHaveLength(1), WAIT);
  let stopped = false;
  const stopping = pruner.stop().then(() => (stopped = true));
  await new Promise((resolve) => setTimeout(resolve, 3 * INTERVAL_MS));
  expect(stopped, 'stop() resolved while a sweep was still running').toBe(false);
  gate = undefined;
  openGate!();
  await stopping;
  await new Promise((resolve) => setTimeout(resolve, 15 * INTERVAL_MS));
  // That one batch (two readings, the limit) and nothing more: neither the sweep's next batch nor another sweep.
  expect(prunes, 'pruneBefore calls after stop()').toHaveLength(1);
  expect(await stored('old')).toBe(2);
  expect(errors).toEqual([]);
});
