import type { FastifyPluginCallback } from 'fastify';
import { Type, type Static } from 'typebox';
import { ValidationError } from '../../domain/errors.js';
import type { Reading } from '../../domain/reading.js';
import { formatUtc } from '../../domain/timestamp.js';
import type { RecordCursor, StoredReading } from '../../store/types.js';
import type { SurfaceDeps } from '../server.js';

/** Seed 000, the records API: availability, stored records (newest first) and the write buffer. */

const RecordsQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  cursor: Type.Optional(Type.String({ description: 'next_cursor from the previous page' })),
});
type RecordsQuery = Static<typeof RecordsQuery>;

function recordOf(r: Reading) {
  return {
    device_id: r.deviceId,
    timestamp: r.tsText ?? formatUtc(r.tsUs),
    data_payload: r.payload === null ? null : (JSON.parse(r.payload) as unknown),
    count: r.count,
  };
}

function encodeCursor(r: StoredReading): string {
  return Buffer.from(`${r.tsUs}:${r.seq}`).toString('base64url');
}

function decodeCursor(cursor: string): RecordCursor {
  const match = /^(-?\d{1,17}):(\d{1,17})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (match === null) throw new ValidationError('cursor', 'cursor is not one this service issued; pass next_cursor unchanged');
  return { tsUs: Number(match[1]), seq: Number(match[2]) };
}

export const recordsSurface: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  app.get('/', async () => ({ status: 'ok', service: 'tally' }));

  app.get<{ Querystring: RecordsQuery }>('/records', { schema: { querystring: RecordsQuery } }, async (request) => {
    const { limit, cursor } = request.query;
    const page = await deps.store.listRecords(limit, cursor === undefined ? undefined : decodeCursor(cursor));
    const last = page.length === limit ? page[page.length - 1] : undefined;
    return { records: page.map(recordOf), next_cursor: last === undefined ? null : encodeCursor(last) };
  });

  // The seed merged a buffer into the main store at a threshold. In Tally the buffer is the
  // group-commit queue: accepted, not yet committed, and not yet acknowledged to the sender.
  app.get('/check-buffer', async () => {
    const stats = deps.batcher.stats();
    return {
      size: stats.queued + stats.writing,
      queued: stats.queued,
      writing: stats.writing,
      threshold: stats.maxBatchReadings,
      limit: stats.queueLimit,
      records: deps.batcher.pending(100).map(recordOf),
    };
  });

  done();
};
