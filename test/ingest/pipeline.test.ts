import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RetentionWindow } from '../../src/domain/retention.js';
import { GroupCommitBatcher } from '../../src/ingest/batcher.js';
import { IngestPipeline, ItemStatus } from '../../src/ingest/pipeline.js';
import type { ReadingShape } from '../../src/ingest/shape.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { tempDir } from '../helpers.js';

/** The one ingest entry point, against the real SQLite store: what each item became, and what was written. */

const shape: ReadingShape = {
  deviceId: { property: 'device_id' },
  ts: 'ts',
  epoch: { refuse: 'ts is a number: say its unit' },
  count: { property: 'count', rule: 'optional' },
  payload: { property: 'payload', required: false },
  itemForm: '{device_id, ts, count?, payload?}',
};

/** Now, for the retention window: 2024-06-01T00:00:00Z. */
const NOW_MS = Date.UTC(2024, 5, 1);
let n = 0;
const dev = () => `pipe-${++n}`;

describe('IngestPipeline', () => {
  let store: SqliteStore;
  let pipeline: IngestPipeline;
  let removeDir: () => void;
  beforeAll(async () => {
    const { dir, cleanup } = tempDir('tally-pipeline-');
    removeDir = cleanup;
    store = await SqliteStore.open({ file: join(dir, 'tally.db'), synchronous: 'FULL', cacheMiB: 8, compactRows: 50_000 });
    const batcher = new GroupCommitBatcher(store, { queueLimit: 10_000, maxBatchReadings: 5_000 });
    pipeline = new IngestPipeline(batcher, { retention: new RetentionWindow(30 * 86_400_000_000, '30d', () => NOW_MS) });
  });
  afterAll(async () => {
    await store.close();
    removeDir();
  });

  test('each item is stored, a duplicate or rejected by its index; only the valid ones are written', async () => {
    const d = dev();
    await pipeline.write([{ device_id: d, ts: '2024-05-30T00:00:00Z', count: 1 }], shape);
    const outcome = await pipeline.write(
      [
        { device_id: d, ts: '2024-05-31T00:00:00Z', count: 2 },
        { device_id: d, ts: '2024-05-30T00:00:00Z', count: 100 }, // already stored
        { device_id: d, ts: 'yesterday', count: 4 },
        { device_id: d, ts: '2024-05-31T00:00:00+00:00', count: 8 }, // the first item again, another offset
        'not an object',
        { device_id: d, ts: '2024-05-31T12:00:00Z', payload: { t: 1 } },
      ],
      shape,
    );
    expect(Array.from(outcome.status)).toEqual([
      ItemStatus.Stored,
      ItemStatus.Duplicate,
      ItemStatus.Rejected,
      ItemStatus.Duplicate,
      ItemStatus.Rejected,
      ItemStatus.Stored,
    ]);
    expect(outcome.stored).toBe(2);
    expect(outcome.duplicates).toBe(2);
    expect(outcome.rejections.map((r) => [r.index, r.error.field])).toEqual([
      [2, 'ts'],
      [4, 'reading'],
    ]);
    expect(await store.getDevice(d)).toMatchObject({ readingCount: 3, cumulativeCount: 3, latestPayload: '{"t":1}' });
  });

  test('retention is applied once, here: an item older than the window is rejected naming its field', async () => {
    const d = dev();
    const outcome = await pipeline.write(
      [
        { device_id: d, ts: '2024-04-01T00:00:00Z', count: 1 }, // 61 days old
        { device_id: d, ts: '2024-05-02T00:00:01Z', count: 2 }, // just inside 30 days
      ],
      { ...shape, itemPath: (i) => `readings[${i}].` },
    );
    expect(Array.from(outcome.status)).toEqual([ItemStatus.Rejected, ItemStatus.Stored]);
    expect(outcome.rejections[0]!.error.field).toBe('readings[0].ts');
    expect(outcome.rejections[0]!.error.message).toMatch(/retention window \(30d\)/);
    expect(await store.getDevice(d)).toMatchObject({ readingCount: 1, cumulativeCount: 2 });
  });

  test('atomic: any rejection writes nothing; the valid items are NotWritten', async () => {
    const d = dev();
    const items = [
      { device_id: d, ts: '2024-05-31T00:00:00Z', count: 1 },
      { device_id: d, ts: '2024-05-31T00:00:01Z', count: -1 },
      { device_id: d, ts: 17 },
    ];
    const outcome = await pipeline.write(items, shape, { atomic: true });
    expect(Array.from(outcome.status)).toEqual([ItemStatus.NotWritten, ItemStatus.Rejected, ItemStatus.Rejected]);
    expect(outcome.rejections.map((r) => r.error.field)).toEqual(['count', 'ts']);
    expect(await store.getDevice(d)).toBeUndefined();

    const first = await pipeline.write(items, shape, { atomic: true, firstErrorOnly: true });
    expect(first.rejections.map((r) => r.index)).toEqual([1]);
    expect(await store.getDevice(d)).toBeUndefined();

    const valid = [items[0]!];
    const checked = await pipeline.write(valid, shape, { checkOnly: true });
    expect(Array.from(checked.status)).toEqual([ItemStatus.NotWritten]);
    expect(await store.getDevice(d)).toBeUndefined();
    expect((await pipeline.write(valid, shape, { atomic: true })).stored).toBe(1);
    expect(await store.getDevice(d)).toMatchObject({ readingCount: 1 });
  });

  test('a fixed device id is used as given for every item', async () => {
    const d = dev();
    const outcome = await pipeline.write(
      [{ t: '2024-05-31T00:00:00Z', c: 3 }, { t: '2024-05-31T00:00:01Z', c: 4 }],
      { deviceId: { fixed: d }, ts: 't', count: { property: 'c', rule: 'positive' }, itemForm: '{t, c}' },
    );
    expect(outcome.stored).toBe(2);
    expect(await store.getDevice(d)).toMatchObject({ readingCount: 2, cumulativeCount: 7 });
  });
});
