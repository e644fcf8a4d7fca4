import type { FastifyPluginCallback } from 'fastify';
import { Type, type Static } from 'typebox';
import type { Reading } from '../../domain/reading.js';
import { formatUtc } from '../../domain/timestamp.js';
import { visiblePrefix } from '../access.js';
import { errorReplies, OpenObject, Payload, reply as doc, TallyErrorForm } from '../docs.js';
import type { SurfaceDeps } from '../server.js';

/** Seed 000, the records API: availability, stored records (newest first) and the write buffer. */

const RecordsQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  cursor: Type.Optional(Type.String({ description: 'next_cursor from the previous page' })),
});
type RecordsQuery = Static<typeof RecordsQuery>;

const tags = ['records'];
const RecordSchema = Type.Object({
  device_id: Type.String(),
  timestamp: Type.String(),
  data_payload: Payload,
  count: Type.Union([Type.Integer(), Type.Null()]),
});
const recordExample = { device_id: 'dev-1', timestamp: '2025-09-09T17:00:00Z', data_payload: { gene_count: 12, sample_quality: 0.98 }, count: null };

function recordOf(r: Reading) {
  return {
    device_id: r.deviceId,
    timestamp: r.tsText ?? formatUtc(r.tsUs),
    data_payload: r.payload === null ? null : (JSON.parse(r.payload) as unknown),
    count: r.count,
  };
}

export const recordsSurface: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  app.get(
    '/',
    { config: { access: 'open' }, schema: { tags, summary: 'Availability', response: { 200: doc('Up', OpenObject, { status: 'ok', service: 'tally' }) } } },
    async () => ({ status: 'ok', service: 'tally' }),
  );

  const recordsSchema = {
    tags,
    summary: 'Stored records, newest timestamp first, paginated',
    querystring: RecordsQuery,
    response: {
      200: doc(
        'A page of records',
        Type.Object({ records: Type.Array(RecordSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) }),
        { records: [recordExample], next_cursor: null },
      ),
      ...errorReplies(TallyErrorForm, [400]),
    },
  };
  app.get<{ Querystring: RecordsQuery }>('/records', { schema: recordsSchema }, async (request) => {
    const { limit, cursor } = request.query;
    const prefix = visiblePrefix(request, undefined);
    if (prefix === null) return { records: [], next_cursor: null };
    const page = await deps.store.listRecords({ limit, cursor, prefix });
    return { records: page.items.map(recordOf), next_cursor: page.nextCursor };
  });

  // The seed merged a buffer into the main store at a threshold. In Tally the buffer is the
  // group-commit queue: accepted, not yet committed, and not yet acknowledged to the sender.
  const bufferSchema = {
    tags,
    summary: 'Readings accepted but not yet committed (the group-commit queue)',
    response: {
      200: doc(
        'The write buffer',
        Type.Object({
          size: Type.Integer(),
          queued: Type.Integer(),
          writing: Type.Integer(),
          threshold: Type.Integer({ description: 'most readings in one transaction' }),
          limit: Type.Integer({ description: 'most readings waiting before writes get 503' }),
          records: Type.Array(RecordSchema),
        }),
        { size: 0, queued: 0, writing: 0, threshold: 20000, limit: 100000, records: [] },
      ),
      ...errorReplies(TallyErrorForm, []),
    },
  };
  // The queue holds every device's readings: not for device-bound keys.
  app.get('/check-buffer', { config: { fleet: true }, schema: bufferSchema }, async () => {
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
