import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { QueueFullError, ShuttingDownError, StorageUnavailableError } from '../../src/domain/errors.js';
import type { Reading } from '../../src/domain/reading.js';
import { GroupCommitBatcher } from '../../src/ingest/batcher.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { TelemetryStore } from '../../src/store/types.js';
import { tempDir } from '../helpers.js';

const BASE = Date.UTC(2024, 0, 1) * 1000;
const SECOND = 1_000_000;

function reading(deviceId: string, second: number, count: number | null = 1): Reading {
  return { deviceId, tsUs: BASE + second * SECOND, tsText: null, count, payload: null };
}

let unique = 0;
const dev = (label: string): string => `${label}-${++unique}`;

/** `n` readings of a fresh device. */
function readingsOf(n: number, label = 'q'): Reading[] {
  const d = dev(label);
  return Array.from({ length: n }, (_, i) => reading(d, i));
}

/** One turn of the event loop: the batcher flushes on setImmediate. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn();
}

/**
 * The real store with its appendBatch calls recorded: every call is delegated unchanged, so this is
 * a spy, not a mock.
 */
function recording(real: TelemetryStore): { store: TelemetryStore; batches: number[] } {
  const batches: number[] = [];
  const store = new Proxy(real, {
    get(target, prop) {
      if (prop === 'appendBatch') {
        return (readings: readonly Reading[]) => {
          batches.push(readings.length);
          return target.appendBatch(readings);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store, batches };
}

/**
 * A store double whose appendBatch calls stay pending until the test settles them. A double is
 * acceptable here (and only here): these tests are about the batcher's queueing, back-pressure and
 * shutdown, which need control over when a commit finishes; storage itself is covered with the
 * real store above and in test/store. The batcher uses only name, maxConcurrentWrites and appendBatch.
 */
class ManualStore implements Pick<TelemetryStore, 'name' | 'maxConcurrentWrites' | 'appendBatch'> {
  readonly name = 'manual';
  readonly calls: Array<{ readings: readonly Reading[]; resolve(flags: Uint8Array): void; reject(error: unknown): void }> = [];

  constructor(readonly maxConcurrentWrites = 1) {}

  appendBatch(readings: readonly Reading[]): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.calls.push({ readings, resolve, reject }));
  }

  /** Commits the oldest pending call, every reading stored. */
  commitOldest(): void {
    const call = this.calls.shift();
    if (call === undefined) throw new Error('no appendBatch call is pending');
    call.resolve(new Uint8Array(call.readings.length).fill(1));
  }

  failOldest(error: unknown): void {
    const call = this.calls.shift();
    if (call === undefined) throw new Error('no appendBatch call is pending');
    call.reject(error);
  }

  asStore(): TelemetryStore {
    return this as unknown as TelemetryStore;
  }
}

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(promise: Promise<T>): { readonly settled: boolean; readonly promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

describe('GroupCommitBatcher with the real SQLite store', () => {
  let real: SqliteStore;
  let removeDir: () => void;
  beforeAll(async () => {
    const { dir, cleanup } = tempDir('tally-batcher-');
    removeDir = cleanup;
    real = await SqliteStore.open({ file: join(dir, 'tally.db'), synchronous: 'FULL', cacheMiB: 8, compactRows: 50_000 });
  });
  afterAll(async () => {
    await real.close();
    removeDir();
  });

  test('concurrent submissions share transactions and each submitter gets exactly its own flags', async () => {
    const { store, batches } = recording(real);
    const batcher = new GroupCommitBatcher(store, { queueLimit: 10_000, maxBatchReadings: 5_000 });
    const devices = Array.from({ length: 7 }, () => dev('gc'));

    // Submitter i sends (i % 3) + 1 readings of device i % 7 at seconds i*10 + j. For every fifth
    // submitter the first reading was already stored; every eleventh also repeats the first reading
    // of the submitter before it (the earlier one in the batch wins).
    const submissions: Reading[][] = [];
    const prestored: Reading[] = [];
    for (let i = 0; i < 200; i++) {
      const d = devices[i % 7]!;
      const rs = Array.from({ length: (i % 3) + 1 }, (_, j) => reading(d, i * 10 + j, i + j));
      if (i % 5 === 0) prestored.push(rs[0]!);
      if (i % 11 === 0 && i > 0) rs.push(submissions[i - 1]![0]!);
      submissions.push(rs);
    }
    await real.appendBatch(prestored);

    // The first submission finds the store idle and is written on its own at once ...
    const first = batcher.submit(submissions[0]!);
    await turn();
    expect(batches).toEqual([1]);
    // ... the other 199 arrive while it commits and are gathered into one transaction.
    const rest = submissions.slice(1).map((s) => batcher.submit(s));
    const results = (await Promise.all([first, ...rest])).map((flags) => Array.from(flags));

    const total = submissions.reduce((n, s) => n + s.length, 0);
    expect(batches).toEqual([1, total - 1]);
    expect(batches.length).toBeLessThan(submissions.length);

    expect(results[0]).toEqual([0]); // prestored
    expect(results[1]).toEqual([1, 1]);
    expect(results[2]).toEqual([1, 1, 1]);
    expect(results[5]).toEqual([0, 1, 1]); // prestored first reading
    expect(results[11]).toEqual([1, 1, 1, 0]); // repeats submitter 10's prestored first reading
    expect(results[22]).toEqual([1, 1, 0]); // repeats submitter 21's first reading, stored earlier in this batch
    expect(results[21]).toEqual([1]);
    // Every submitter: one flag per reading it sent, first write wins in submission order.
    const seen = new Set(prestored.map((r) => `${r.deviceId}@${r.tsUs}`));
    submissions.forEach((s, i) => {
      const expected = s.map((r) => {
        const key = `${r.deviceId}@${r.tsUs}`;
        const fresh = !seen.has(key);
        seen.add(key);
        return fresh ? 1 : 0;
      });
      expect(results[i], `submitter ${i}`).toEqual(expected);
    });

    const storedByBatcher = results.flat().filter((f) => f === 1).length;
    let readingCount = 0;
    for (const d of devices) readingCount += (await real.getDevice(d))!.readingCount;
    expect(readingCount).toBe(prestored.length + storedByBatcher);
    expect(batcher.stats()).toMatchObject({ queued: 0, writing: 0 });
    await batcher.close();
  });

  test('maxBatchReadings caps a transaction; a single larger submission still goes whole', async () => {
    const { store, batches } = recording(real);
    const batcher = new GroupCommitBatcher(store, { queueLimit: 1_000, maxBatchReadings: 5 });
    expect(batcher.stats().maxBatchReadings).toBe(5);
    const sizes = [2, 2, 2, 7, 1, 1];
    const results = await Promise.all(sizes.map((n) => batcher.submit(readingsOf(n, 'cap'))));
    expect(batches).toEqual([4, 2, 7, 2]);
    expect(results.map((r) => Array.from(r))).toEqual(sizes.map((n) => new Array(n).fill(1)));
    await batcher.close();
  });

  test('a failing appendBatch rejects every submitter of that batch; the next batch works', async () => {
    const { store, batches } = recording(real);
    const batcher = new GroupCommitBatcher(store, { queueLimit: 1_000, maxBatchReadings: 1_000 });
    const a = dev('fail-a');
    const b = dev('fail-b');
    // A reading without a device id makes SQLite abort the whole transaction.
    const poison = { ...reading('x', 0), deviceId: null as unknown as string };
    const outcomes = await Promise.allSettled([
      batcher.submit([reading(a, 1)]),
      batcher.submit([reading(b, 1), reading(b, 2)]),
      batcher.submit([poison]),
    ]);
    expect(batches).toEqual([4]);
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(StorageUnavailableError);
    }
    expect(await real.getDevice(a)).toBeUndefined();
    expect(await real.getDevice(b)).toBeUndefined();
    expect(batcher.stats()).toMatchObject({ queued: 0, writing: 0 });

    const again = await Promise.all([batcher.submit([reading(a, 1)]), batcher.submit([reading(b, 1), reading(b, 2)])]);
    expect(again.map((f) => Array.from(f))).toEqual([[1], [1, 1]]);
    expect(batches).toEqual([4, 3]);
    expect(await real.getDevice(a)).toMatchObject({ readingCount: 1 });
    expect(await real.getDevice(b)).toMatchObject({ readingCount: 2 });
    await batcher.close();
  });

  test('close() right after submitting waits for the commit of everything accepted', async () => {
    const batcher = new GroupCommitBatcher(real, { queueLimit: 1_000, maxBatchReadings: 7 });
    const d = dev('drain');
    const answers = Array.from({ length: 50 }, (_, i) => batcher.submit([reading(d, i, 2)]));
    await batcher.close();
    // Nothing was awaited before close(): the readings were only queued, none written yet.
    expect(await real.getDevice(d)).toMatchObject({ readingCount: 50, cumulativeCount: 100 });
    expect((await Promise.all(answers)).map((f) => Array.from(f))).toEqual(new Array(50).fill([1]));
    await expect(batcher.submit([reading(d, 99)])).rejects.toBeInstanceOf(ShuttingDownError);
    expect((await real.getDevice(d))?.readingCount).toBe(50);
  });
});

describe('GroupCommitBatcher queueing (store double)', () => {
  test('QueueFullError when the backlog would exceed queueLimit; room comes back after a commit', async () => {
    const manual = new ManualStore();
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 10, maxBatchReadings: 100 });

    const p1 = batcher.submit(readingsOf(4));
    await turn();
    expect(manual.calls.map((c) => c.readings.length)).toEqual([4]);
    expect(batcher.stats()).toEqual({ queued: 0, writing: 4, queueLimit: 10, maxBatchReadings: 100 });

    const p2 = batcher.submit(readingsOf(4));
    expect(batcher.stats()).toMatchObject({ queued: 4, writing: 4 });
    const full = batcher.submit(readingsOf(3)); // 8 + 3 > 10
    await expect(full).rejects.toBeInstanceOf(QueueFullError);
    await expect(full).rejects.toMatchObject({ code: 'QueueFull', retryAfterSeconds: 1 });
    await expect(full).rejects.toThrow(/10 readings/);
    const p3 = batcher.submit(readingsOf(2)); // exactly 10
    await expect(batcher.submit(readingsOf(1))).rejects.toBeInstanceOf(QueueFullError);
    expect(batcher.stats()).toMatchObject({ queued: 6, writing: 4 });
    // A rejected submission is not queued.
    expect(batcher.pending(100)).toHaveLength(6);

    manual.commitOldest();
    expect(Array.from(await p1)).toEqual([1, 1, 1, 1]);
    await turn();
    // The two queued submissions now go together; there is room for 4 more.
    expect(manual.calls.map((c) => c.readings.length)).toEqual([6]);
    expect(batcher.stats()).toMatchObject({ queued: 0, writing: 6 });
    const p4 = batcher.submit(readingsOf(4));
    await expect(batcher.submit(readingsOf(1))).rejects.toBeInstanceOf(QueueFullError);

    manual.commitOldest();
    expect(Array.from(await p2)).toEqual([1, 1, 1, 1]);
    expect(Array.from(await p3)).toEqual([1, 1]);
    await turn();
    manual.commitOldest();
    expect(Array.from(await p4)).toEqual([1, 1, 1, 1]);
    expect(batcher.stats()).toMatchObject({ queued: 0, writing: 0 });
    await batcher.close();
  });

  test('a submission larger than queueLimit is accepted only into an empty queue', async () => {
    const manual = new ManualStore();
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 5, maxBatchReadings: 100 });
    const big = batcher.submit(readingsOf(8));
    await expect(batcher.submit(readingsOf(8))).rejects.toBeInstanceOf(QueueFullError);
    await turn();
    manual.commitOldest();
    expect(await big).toHaveLength(8);
    await batcher.close();
  });

  test('an empty submission resolves at once without a transaction', async () => {
    const manual = new ManualStore();
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 5, maxBatchReadings: 100 });
    expect(await batcher.submit([])).toHaveLength(0);
    await turn();
    expect(manual.calls).toHaveLength(0);
  });

  test('pending() lists queued readings oldest first, not those being written', async () => {
    const manual = new ManualStore();
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 100, maxBatchReadings: 100 });
    const writing = readingsOf(2);
    const queuedA = readingsOf(3);
    const queuedB = readingsOf(1);
    const answers = [batcher.submit(writing)];
    await turn();
    answers.push(batcher.submit(queuedA), batcher.submit(queuedB));
    expect(batcher.pending(10)).toEqual([...queuedA, ...queuedB]);
    expect(batcher.pending(2)).toEqual(queuedA.slice(0, 2));
    expect(batcher.pending(0)).toEqual([]);
    manual.commitOldest();
    await turn();
    await turn();
    expect(batcher.pending(10)).toEqual([]);
    manual.commitOldest();
    await Promise.all(answers);
  });

  test('close() resolves only after accepted work has committed; later submit() rejects', async () => {
    const manual = new ManualStore();
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 100, maxBatchReadings: 100 });
    const events: string[] = [];
    const p1 = batcher.submit(readingsOf(2)).then(() => events.push('p1'));
    await turn(); // p1 is being written
    const p2 = batcher.submit(readingsOf(3)).then(() => events.push('p2')); // p2 is queued
    const closed = track(batcher.close().then(() => events.push('closed')));
    const closedAgain = track(batcher.close());

    await expect(batcher.submit(readingsOf(1))).rejects.toBeInstanceOf(ShuttingDownError);
    await turns(3);
    expect(closed.settled).toBe(false);

    manual.commitOldest();
    await p1;
    await turns(3);
    expect(closed.settled).toBe(false);
    expect(manual.calls.map((c) => c.readings.length)).toEqual([3]); // the queued work still goes

    manual.commitOldest();
    await closed.promise;
    await closedAgain.promise;
    await p2;
    expect(events).toEqual(['p1', 'p2', 'closed']);
    await expect(batcher.submit(readingsOf(1))).rejects.toBeInstanceOf(ShuttingDownError);
    expect(manual.calls).toHaveLength(0);
  });

  test('close() of an idle batcher resolves at once', async () => {
    const manual = new ManualStore();
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 100, maxBatchReadings: 100 });
    const closed = track(batcher.close());
    await turn();
    expect(closed.settled).toBe(true);
    await expect(batcher.submit(readingsOf(1))).rejects.toBeInstanceOf(ShuttingDownError);
  });

  test('close() still resolves when the last batch fails', async () => {
    const manual = new ManualStore();
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 100, maxBatchReadings: 100 });
    const p = batcher.submit(readingsOf(2));
    await turn();
    const closed = track(batcher.close());
    manual.failOldest(new StorageUnavailableError('disk gone'));
    await expect(p).rejects.toThrow('disk gone');
    await closed.promise;
    expect(batcher.stats()).toMatchObject({ queued: 0, writing: 0 });
  });

  test('a failed batch does not hold up the batch queued behind it', async () => {
    const manual = new ManualStore();
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 100, maxBatchReadings: 100 });
    const failing = batcher.submit(readingsOf(2));
    await turn();
    const next = batcher.submit(readingsOf(3));
    const error = new StorageUnavailableError('commit failed');
    manual.failOldest(error);
    await expect(failing).rejects.toBe(error);
    await turn();
    expect(manual.calls.map((c) => c.readings.length)).toEqual([3]);
    manual.commitOldest();
    expect(Array.from(await next)).toEqual([1, 1, 1]);
  });

  test('honours maxConcurrentWrites: at most that many transactions at once', async () => {
    const manual = new ManualStore(2);
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 10_000, maxBatchReadings: 1000 });
    const answers = [batcher.submit(readingsOf(1000)), batcher.submit(readingsOf(1000)), batcher.submit(readingsOf(1000))];
    await turns(2);
    expect(manual.calls.map((c) => c.readings.length)).toEqual([1000, 1000]);
    manual.commitOldest();
    await turns(2);
    expect(manual.calls.map((c) => c.readings.length)).toEqual([1000, 1000]);
    manual.commitOldest();
    manual.commitOldest();
    expect((await Promise.all(answers)).map((f) => f.length)).toEqual([1000, 1000, 1000]);
  });

  test('a second transaction joins one in flight only with 1,000 readings or more; smaller ones wait and share', async () => {
    const manual = new ManualStore(2);
    const batcher = new GroupCommitBatcher(manual.asStore(), { queueLimit: 10_000, maxBatchReadings: 5000 });
    const first = batcher.submit(readingsOf(1));
    await turns(2);
    const small = [batcher.submit(readingsOf(10)), batcher.submit(readingsOf(10))];
    await turns(2);
    // 20 readings are not worth a commit of their own while one is running: they wait for it.
    expect(manual.calls.map((c) => c.readings.length)).toEqual([1]);
    const big = batcher.submit(readingsOf(1000));
    await turns(2);
    expect(manual.calls.map((c) => c.readings.length)).toEqual([1, 1020]);
    manual.commitOldest();
    manual.commitOldest();
    expect((await Promise.all([first, ...small, big])).map((f) => f.length)).toEqual([1, 10, 10, 1000]);
    // Once nothing is in flight, even one reading goes at once.
    const lone = batcher.submit(readingsOf(1));
    await turns(2);
    expect(manual.calls.map((c) => c.readings.length)).toEqual([1]);
    manual.commitOldest();
    expect((await lone).length).toBe(1);
  });
});
