import { describe, expect, test } from 'vitest';
import { CandidateReader } from '../../src/ingest/candidate.js';
import type { ReadingShape } from '../../src/ingest/shape.js';
import { validationError } from '../domain/expect-validation.js';

/** The per-item checks of the one ingest path, through the shapes surfaces describe themselves with. */

const v1Shape: ReadingShape = {
  deviceId: { property: 'device_id' },
  ts: 'ts',
  epoch: { refuse: 'ts is a number: pass ?precision=s, ms or us to say its unit' },
  count: { property: 'count', rule: 'optional' },
  payload: { property: 'payload', required: false },
  itemForm: '{device_id, ts, count?, payload?}',
};

const oneDevice: ReadingShape = {
  deviceId: { fixed: 'dev' },
  ts: 'timestamp',
  count: { property: 'count', rule: 'positive' },
  itemPath: (i) => `readings[${i}].`,
  itemForm: '{count, timestamp}',
};

describe('CandidateReader', () => {
  test('keeps the timestamp text as sent, the parsed instant, the count and the payload as JSON text', () => {
    const reader = new CandidateReader(v1Shape);
    expect(reader.read({ device_id: 'd', ts: '2021-09-29T16:09:15.5+01:00', count: 3, payload: { a: 1 } }, 0)).toEqual({
      deviceId: 'd',
      tsUs: 1_632_928_155_500_000,
      tsText: '2021-09-29T16:09:15.5+01:00',
      count: 3,
      payload: '{"a":1}',
    });
    expect(reader.read({ device_id: 'd', ts: '2021-09-29T16:09:15Z' }, 1)).toMatchObject({ count: null, payload: null });
  });

  test('errors name the field in the surface’s own words, with the item’s path', () => {
    const reader = new CandidateReader(oneDevice);
    validationError(() => reader.read({ timestamp: '2021-02-30T00:00:00Z', count: 1 }, 7), 'readings[7].timestamp');
    validationError(() => reader.read({ timestamp: '2021-02-03T00:00:00Z', count: 0 }, 2), 'readings[2].count');
    validationError(() => reader.read('nope', 4), 'readings[4]');
    const v1 = new CandidateReader(v1Shape);
    validationError(() => v1.read({ device_id: '', ts: '2021-02-03T00:00:00Z' }, 0), 'device_id');
    validationError(() => v1.read({ device_id: 'd', ts: 17 }, 0), 'ts');
    validationError(() => v1.read({ device_id: 'd', ts: '2021-02-03T00:00:00Z', count: -1 }, 0), 'count');
    validationError(() => v1.read({ device_id: 'd', ts: '2021-02-03T00:00:00Z', payload: [1] }, 0), 'payload');
    validationError(() => v1.read(null, 0), 'reading');
  });

  test('a repeated device id is checked once, but a different bad one after a good one is still refused', () => {
    const reader = new CandidateReader(v1Shape);
    const ts = '2021-02-03T00:00:00Z';
    expect(reader.read({ device_id: 'a', ts }, 0).deviceId).toBe('a');
    expect(reader.read({ device_id: 'a', ts }, 1).deviceId).toBe('a');
    validationError(() => reader.read({ device_id: 'a\u0000', ts }, 2), 'device_id');
    validationError(() => reader.read({ device_id: 7, ts }, 3), 'device_id');
  });

  test('numeric timestamps only with a unit; required counts and payloads', () => {
    const seconds = new CandidateReader({ ...v1Shape, epoch: { unit: 's' } });
    expect(seconds.read({ device_id: 'd', ts: 1_700_000_000 }, 0)).toMatchObject({ tsUs: 1_700_000_000_000_000, tsText: null });
    validationError(() => seconds.read({ device_id: 'd', ts: 1.5e30 }, 0), 'ts');
    const strict = new CandidateReader({ ...oneDevice, count: { property: 'count', rule: 'required' }, payload: { property: 'data', required: true } });
    validationError(() => strict.read({ timestamp: '2021-02-03T00:00:00Z', data: {} }, 0), 'readings[0].count');
    validationError(() => strict.read({ timestamp: '2021-02-03T00:00:00Z', count: 0 }, 1), 'readings[1].data');
    expect(strict.read({ timestamp: '2021-02-03T00:00:00Z', count: 0, data: { x: 1 } }, 2)).toMatchObject({ count: 0, payload: '{"x":1}' });
  });
});
