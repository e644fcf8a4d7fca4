import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, test } from 'vitest';
import { StorageUnavailableError } from '../../src/domain/errors.js';
import type { Reading } from '../../src/domain/reading.js';
import { toColumns } from '../../src/store/sqlite/columns.js';
import { SqliteReads } from '../../src/store/sqlite/reads.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { SqliteWriter } from '../../src/store/sqlite/writer.js';
import type { AggregateQuery, DeviceListQuery } from '../../src/store/types.js';
import { tempDir } from '../helpers.js';

const BASE = Date.UTC(2024, 0, 1) * 1000;
const SECOND = 1_000_000;
const reading = (deviceId: string, s: number, count: number | null = 1, temp?: number): Reading => ({
  deviceId,
  tsUs: BASE + s * SECOND,
  tsText: null,
  count,
  payload: temp === undefined ? null : JSON.stringify({ temp }),
});

/** Every read the store answers, on a fixed set of devices, each as the store would be asked. */
interface Reader {
  getDevice: SqliteStore['getDevice'];
  listDevices: SqliteStore['listDevices'];
  deviceReadings: SqliteStore['deviceReadings'];
  aggregate: SqliteStore['aggregate'];
  listRecords: SqliteStore['listRecords'];
}

async function everyAnswer(r: Reader, devices: string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  const hour = 3600 * SECOND;
  const aggregates: AggregateQuery[] = [
    { fromUs: BASE, toUs: BASE + 10 * hour, everyUs: 60 * SECOND, field: { kind: 'count' } },
    { fromUs: BASE + 30 * SECOND, toUs: BASE + 500 * SECOND, everyUs: 7 * SECOND, field: { kind: 'payload', name: 'temp' } },
  ];
  for (const id of devices) {
    out.push(await r.getDevice(id));
    out.push(await r.deviceReadings(id, { order: 'asc' }));
    out.push(await r.deviceReadings(id, { order: 'desc', limit: 7 }));
    out.push(await r.deviceReadings(id, { order: 'asc', limit: 5, fromUs: BASE + 50 * SECOND, toUs: BASE + 400 * SECOND }));
    for (const q of aggregates) out.push(await r.aggregate(id, q));
  }
  const sorts: DeviceListQuery['sort'][] = [{ by: 'deviceId' }, { by: 'cumulativeCount' }, { by: 'latestTs' }, { by: 'payload', fields: ['temp'] }];
  for (const sort of sorts) {
    for (const order of ['asc', 'desc'] as const) {
      let cursor: string | undefined;
      do {
        const page = await r.listDevices({ sort, order, limit: 40, offset: 0, withTotal: true, cursor });
        out.push(page);
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
    }
  }
  out.push(await r.listDevices({ sort: { by: 'readingCount' }, order: 'desc', limit: 10, offset: 0, withTotal: true, prefix: 'p-' }));
  let cursor: string | undefined;
  do {
    const page = await r.listRecords({ limit: 97, cursor });
    out.push(page);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  out.push(await r.listRecords({ limit: 50, prefix: 'p-' }));
  return out;
}

describe('reads that include the journal', () => {
  test('answer what the same reads answer once the journal is compacted: pending, direct, out-of-order, duplicate readings and a round cut short', async () => {
    const { dir, cleanup } = tempDir('tally-journal-reads-');
    const file = join(dir, 'tally.db');
    try {
      const writer = new SqliteWriter({ file, synchronous: 'NORMAL', cacheMiB: 8, compactRows: Number.MAX_SAFE_INTEGER, directRunReadings: 20 });
      const devices = ['big', 'p-1', 'p-2', 'q', ...Array.from({ length: 300 }, (_, k) => `fleet-${k}`)];
      // Compacted: big's first 400 seconds (direct runs) and a reading of every device.
      for (let b = 0; b < 4; b++) writer.append(toColumns(Array.from({ length: 100 }, (_, k) => reading('big', b * 100 + k, 1 + (k % 5), 15 + (k % 10)))));
      writer.append(toColumns(devices.map((d, k) => reading(d, 1000 + k, k % 4, k % 7))));
      writer.compactAll();
      // Pending: out-of-order and duplicate readings of big, new devices' readings, a newer run.
      writer.append(toColumns([reading('big', 50, 1), reading('big', 450.5, 9, 30), reading('big', 50.5, 2, 31), reading('big', 10, 100)]));
      writer.append(toColumns([reading('p-1', 3, 4, 20), reading('p-2', 2, null), reading('q', 2000, 5, 99), reading('p-1', 1, 1)]));
      writer.append(toColumns(devices.map((d, k) => reading(d, 1500 + k, 1 + (k % 3), k % 11))));
      // A round cut short: a slice of it committed (the first devices by key), the rest still in the journal.
      expect(writer.compactStep()).toBeGreaterThan(0);
      writer.append(toColumns(devices.map((d, k) => reading(d, 1800 + k, 2, 1))));
      writer.close({ compact: false });

      const raw = new Database(file, { readonly: true });
      expect(raw.prepare('SELECT count(*) FROM journal').pluck().get()).toBeGreaterThan(0);
      expect(raw.prepare('SELECT count(*) FROM compaction').pluck().get()).toBe(1);
      raw.close();

      // Before: a reader of the file as the writer left it, reading the journal too.
      const reads = new SqliteReads(file);
      const viaJournal = (op: keyof Reader) => (...args: unknown[]) => {
        const method = reads[op === 'listRecords' ? 'listRecords' : op] as (...a: unknown[]) => unknown;
        const callArgs = op === 'listRecords' ? [(args[0] as { limit: number }).limit, (args[0] as { cursor?: string }).cursor, (args[0] as { prefix?: string }).prefix] : args;
        return Promise.resolve(reads.withJournal(() => method.apply(reads, callArgs)));
      };
      const before = await everyAnswer(
        { getDevice: viaJournal('getDevice'), listDevices: viaJournal('listDevices'), deviceReadings: viaJournal('deviceReadings'), aggregate: viaJournal('aggregate'), listRecords: viaJournal('listRecords') } as Reader,
        devices.slice(0, 8),
      );
      const chunksOnly = reads.getDevice('q');
      reads.close();

      // After: the store replays and compacts the journal on open.
      const store = await SqliteStore.open({ file, synchronous: 'NORMAL', cacheMiB: 8, compactRows: 100_000 });
      try {
        const after = await everyAnswer(store, devices.slice(0, 8));
        expect(before).toEqual(after);
        expect((await store.getDevice('q'))!.readingCount).toBe(4);
        expect(chunksOnly?.readingCount).not.toBe(4); // the journal held some of q's readings
      } finally {
        await store.close();
      }
    } finally {
      cleanup();
    }
  }, 60_000);
});

/** A tmpfs of `mib` MiB, or undefined where this process cannot mount one (not root, no tmpfs). */
function mountTmpfs(mib: number): { dir: string; unmount(): void } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'tally-full-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  return {
    dir,
    unmount: () => {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fills the file system holding `file` until `leaveBytes` are left (about: blocks are 4 KiB). */
function fillDisk(file: string, leaveBytes: number): void {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(64 * 1024, 1);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  ftruncateSync(fd, Math.max(0, written - leaveBytes));
  closeSync(fd);
}

const disk = mountTmpfs(1);
disk?.unmount();

describe('a full disk', () => {
  test.skipIf(disk === undefined)('writes get StorageUnavailableError (503), reads answer with every acknowledged reading, from the journal', async () => {
    const mounted = mountTmpfs(16)!;
    const data = join(mounted.dir, 'data');
    mkdirSync(data);
    const file = join(data, 'tally.db');
    const filler = join(mounted.dir, 'filler');
    const store = await SqliteStore.open({ file, synchronous: 'FULL', cacheMiB: 8, compactRows: Number.MAX_SAFE_INTEGER });
    try {
      const acked: Reading[] = [];
      const append = async (batch: Reading[]) => {
        const stored = await store.appendBatch(batch);
        expect(Array.from(stored).every((f) => f === 1)).toBe(true);
        acked.push(...batch);
      };
      // Compacted readings, then the disk filled but for a little, then writes until the disk is full.
      for (let b = 0; b < 5; b++) await append(Array.from({ length: 1000 }, (_, k) => reading(`d${k % 10}`, b * 100 + Math.floor(k / 10), 1 + (k % 3), k % 50)));
      expect((await store.getDevice('d1'))!.readingCount).toBe(500);
      fillDisk(filler, 256 * 1024);
      let failure: unknown;
      for (let s = 1000; failure === undefined && s < 100_000; s += 10) {
        try {
          await append(Array.from({ length: 100 }, (_, k) => reading(`d${k % 10}`, s + Math.floor(k / 10), 2, k)));
        } catch (err) {
          failure = err;
        }
      }
      expect(failure).toBeInstanceOf(StorageUnavailableError);
      expect(String((failure as Error).message)).toMatch(/full|disk/i);
      await expect(store.appendBatch([reading('late', 1)])).rejects.toBeInstanceOf(StorageUnavailableError);

      // The journal holds acknowledged readings the writer cannot compact, and reads see them.
      const raw = new Database(file, { readonly: true });
      expect(raw.prepare('SELECT count(*) FROM journal').pluck().get()).toBeGreaterThan(0);
      raw.close();
      for (let d = 0; d < 10; d++) {
        const mine = acked.filter((r) => r.deviceId === `d${d}`).sort((a, b) => a.tsUs - b.tsUs);
        const summary = await store.getDevice(`d${d}`);
        expect(summary).toMatchObject({ readingCount: mine.length, cumulativeCount: mine.reduce((n, r) => n + r.count!, 0), latestTsUs: mine.at(-1)!.tsUs });
        const all = (await store.deviceReadings(`d${d}`, { order: 'asc' })).items;
        expect(all.map((r) => [r.tsUs, r.count, r.payload])).toEqual(mine.map((r) => [r.tsUs, r.count, r.payload]));
        const buckets = await store.aggregate(`d${d}`, { fromUs: BASE, toUs: BASE + 10 ** 6 * SECOND, everyUs: 10 ** 6 * SECOND, field: { kind: 'count' } });
        expect(buckets.map((b) => [b.count, b.sum])).toEqual([[mine.length, mine.reduce((n, r) => n + r.count!, 0)]]);
      }
      const page = await store.listDevices({ sort: { by: 'readingCount' }, order: 'desc', limit: 100, offset: 0, withTotal: true });
      expect(page.total).toBe(10);
      expect((await store.listRecords({ limit: 1 })).items[0]!.tsUs).toBe(Math.max(...acked.map((r) => r.tsUs)));

      // Space again: writes work, and nothing acknowledged was lost.
      rmSync(filler);
      await append([reading('after', 1)]);
      expect((await store.listDevices({ sort: { by: 'deviceId' }, order: 'asc', limit: 100, offset: 0, withTotal: true })).total).toBe(11);
    } finally {
      rmSync(filler, { force: true });
      await store.close();
      mounted.unmount();
    }
  }, 120_000);
});
