import type { EpochUnit } from '../domain/timestamp.js';
import type { ReadingShape } from '../ingest/shape.js';
import type { Line } from './lines.js';
import { tooLong, type RecordSource } from './records.js';

/**
 * NDJSON files: a /v1 reading `{device_id, ts, count?, payload?}` per line, as GET /v1/export and
 * /v1/devices/:id/readings?format=ndjson write them and POST /v1/readings takes them.
 */

/** The /v1 reading; numeric `ts` only with --precision, as /v1 wants ?precision. */
export function ndjsonShape(precision: EpochUnit | undefined): ReadingShape {
  return {
    deviceId: { property: 'device_id' },
    ts: 'ts',
    epoch: precision === undefined ? { refuse: 'ts is a number: pass --precision s, ms or us to say its unit' } : { unit: precision },
    count: { property: 'count', rule: 'optional' },
    payload: { property: 'payload', required: false },
    itemForm: '{device_id, ts, count?, payload?}',
  };
}

export async function* ndjsonRecords(lines: AsyncIterable<Line[]>): RecordSource {
  for await (const chunk of lines) {
    const out = [];
    for (const { number, text } of chunk) {
      if (text === null) {
        out.push({ line: number, error: tooLong });
        continue;
      }
      if (text.trim() === '') continue;
      try {
        out.push({ line: number, item: JSON.parse(text) as unknown });
      } catch (err) {
        out.push({ line: number, error: `not valid JSON: ${(err as Error).message}` });
      }
    }
    yield out;
  }
}
