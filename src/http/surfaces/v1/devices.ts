import type { FastifyPluginCallback } from 'fastify';
import { Type, type Static } from 'typebox';
import { parseDuration } from '../../../domain/duration.js';
import { NotFoundError, ValidationError } from '../../../domain/errors.js';
import { formatUtc } from '../../../domain/timestamp.js';
import type { AggregateFn, AggregateQuery, DeviceSort, DeviceSummary } from '../../../store/types.js';
import { visiblePrefix } from '../../access.js';
import { errorReplies, Payload, reply as doc, TallyErrorForm } from '../../docs.js';
import type { SurfaceDeps } from '../../server.js';
import { exportFormat, ExportParams, fieldList, sendExport } from './export.js';
import { deviceItem, queryInstant, readingItem } from './format.js';

/** /v1 device reads: the latest state of all devices, one device, its history and aggregates. */

const SORT_PATTERN = '^(device_id|latest_ts|first_ts|reading_count|cumulative_count|payload\\.[A-Za-z_][A-Za-z0-9_]{0,63})$';

const ListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  cursor: Type.Optional(Type.String({ description: 'next_cursor of the previous page' })),
  sort: Type.String({
    pattern: SORT_PATTERN,
    default: 'device_id',
    description: 'device_id, latest_ts, first_ts, reading_count, cumulative_count or payload.<field>',
  }),
  order: Type.Enum(['asc', 'desc'], { default: 'asc' }),
  prefix: Type.Optional(Type.String({ maxLength: 256, description: 'only devices whose id starts with this' })),
});
type ListQuery = Static<typeof ListQuery>;

const DeviceParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) });
type DeviceParams = Static<typeof DeviceParams>;

const HistoryQuery = Type.Object({
  from: Type.Optional(Type.String({ description: 'RFC 3339, inclusive' })),
  to: Type.Optional(Type.String({ description: 'RFC 3339, exclusive' })),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  cursor: Type.Optional(Type.String()),
  order: Type.Enum(['asc', 'desc'], { default: 'asc' }),
  ...ExportParams,
});
type HistoryQuery = Static<typeof HistoryQuery>;

const FNS: readonly AggregateFn[] = ['count', 'sum', 'min', 'max', 'avg'];
const AggregateQuerySchema = Type.Object({
  from: Type.Optional(Type.String({ description: 'RFC 3339, inclusive; default the first reading' })),
  to: Type.Optional(Type.String({ description: 'RFC 3339, exclusive; default just after the latest reading' })),
  every: Type.String({ default: '1h', description: 'bucket width: 30s, 5m, 1h, 1d …; buckets align to the epoch' }),
  fn: Type.String({
    default: 'count,sum,min,max,avg',
    pattern: '^(count|sum|min|max|avg)(,(count|sum|min|max|avg))*$',
    description: 'a comma-separated list of count, sum, min, max, avg',
  }),
  field: Type.String({
    default: 'count',
    pattern: '^(count|payload\\.[A-Za-z_][A-Za-z0-9_]{0,63})$',
    description: 'count or payload.<field>',
  }),
});
type AggregateQuerySchema = Static<typeof AggregateQuerySchema>;

const DeviceItem = Type.Object({
  device_id: Type.String(),
  first_ts: Type.String(),
  latest_ts: Type.String(),
  reading_count: Type.Integer(),
  cumulative_count: Type.Integer(),
  latest_payload: Payload,
});
const deviceExample = {
  device_id: 'meter-1',
  first_ts: '2025-06-18T10:00:00Z',
  latest_ts: '2025-06-18T10:01:00Z',
  reading_count: 2,
  cumulative_count: 5,
  latest_payload: { temp: 21.5 },
};
const ReadingItem = Type.Object({
  device_id: Type.String(),
  ts: Type.String(),
  count: Type.Union([Type.Integer(), Type.Null()]),
  payload: Payload,
});
const NextCursor = Type.Union([Type.String(), Type.Null()], { description: 'pass as cursor for the next page; null on the last' });
const Bucket = Type.Object({
  start: Type.String(),
  count: Type.Optional(Type.Integer()),
  sum: Type.Optional(Type.Number()),
  min: Type.Optional(Type.Number()),
  max: Type.Optional(Type.Number()),
  avg: Type.Optional(Type.Number()),
});

/** Buckets one aggregate query may return. */
const MAX_BUCKETS = 10_000;

function sortOf(sort: string): DeviceSort {
  if (sort.startsWith('payload.')) return { by: 'payload', fields: [sort.slice('payload.'.length)] };
  const by = ({ device_id: 'deviceId', latest_ts: 'latestTs', first_ts: 'firstTs', reading_count: 'readingCount', cumulative_count: 'cumulativeCount' } as const)[
    sort as 'device_id'
  ];
  return { by };
}

export const v1DevicesRoutes: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  async function device(id: string): Promise<DeviceSummary> {
    const found = await deps.store.getDevice(id);
    if (found === undefined) throw new NotFoundError(`device ${JSON.stringify(id)} not found`);
    return found;
  }
  const tags = ['v1'];

  app.get<{ Querystring: ListQuery }>(
    '/v1/devices',
    {
      schema: {
        tags,
        summary: 'Latest state of all devices, sorted, keyset-paginated',
        querystring: ListQuery,
        response: {
          200: doc('A page of devices', Type.Object({ items: Type.Array(DeviceItem), next_cursor: NextCursor }), { items: [deviceExample], next_cursor: null }),
          ...errorReplies(TallyErrorForm, [400]),
        },
      },
    },
    async (request) => {
      const q = request.query;
      // A device-bound key lists its own devices only, whatever prefix it asks for.
      const prefix = visiblePrefix(request, q.prefix);
      if (prefix === null) return { items: [], next_cursor: null };
      const page = await deps.store.listDevices({ sort: sortOf(q.sort), order: q.order, limit: q.limit, cursor: q.cursor, prefix });
      return { items: page.items.map(deviceItem), next_cursor: page.nextCursor };
    },
  );

  app.get<{ Params: DeviceParams }>(
    '/v1/devices/:id',
    {
      config: { deviceParam: 'id' },
      schema: {
        tags,
        summary: "A device's summary (404 if unknown)",
        params: DeviceParams,
        response: { 200: doc('The device', DeviceItem, deviceExample), ...errorReplies(TallyErrorForm, [400, 404]) },
      },
    },
    async (request) => deviceItem(await device(request.params.id)),
  );

  app.get<{ Params: DeviceParams; Querystring: HistoryQuery }>(
    '/v1/devices/:id/readings',
    {
      config: { deviceParam: 'id' },
      schema: {
        tags,
        summary: "A device's readings in a time range: JSON pages (keyset), or the whole range streamed as NDJSON or CSV",
        params: DeviceParams,
        querystring: HistoryQuery,
        response: {
          200: doc('A page of readings', Type.Object({ items: Type.Array(ReadingItem), next_cursor: NextCursor }), {
            items: [{ device_id: 'meter-1', ts: '2025-06-18T10:00:00Z', count: 3, payload: { temp: 21.5 } }],
            next_cursor: null,
          }),
          ...errorReplies(TallyErrorForm, [400, 404]),
        },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const d = await device(request.params.id);
      const fromUs = queryInstant(q.from, 'from');
      const toUs = queryInstant(q.to, 'to');
      if (fromUs !== undefined && toUs !== undefined && toUs < fromUs) throw new ValidationError('to', 'to must not be before from');
      const format = exportFormat(request, q.format);
      // NDJSON or CSV: the whole range, streamed (limit and cursor are for pages of JSON).
      if (format !== undefined) return sendExport(reply, deps.store, format, { deviceId: d.deviceId }, { fromUs, toUs, order: q.order }, fieldList(q.fields));
      const page = await deps.store.deviceReadings(d.deviceId, { fromUs, toUs, order: q.order, limit: q.limit, cursor: q.cursor });
      return { items: page.items.map(readingItem), next_cursor: page.nextCursor };
    },
  );

  app.get<{ Params: DeviceParams; Querystring: AggregateQuerySchema }>(
    '/v1/devices/:id/aggregate',
    {
      config: { deviceParam: 'id' },
      schema: {
        tags,
        summary: 'Epoch-aligned bucketed aggregates, computed in the store',
        params: DeviceParams,
        querystring: AggregateQuerySchema,
        response: {
          200: doc('Non-empty buckets, oldest first', Type.Object({ buckets: Type.Array(Bucket) }), {
            buckets: [{ start: '2025-06-18T10:00:00Z', count: 12, avg: 21.4 }],
          }),
          ...errorReplies(TallyErrorForm, [400, 404]),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const d = await device(request.params.id);
      const fromUs = queryInstant(q.from, 'from') ?? d.firstTsUs;
      const toUs = queryInstant(q.to, 'to') ?? d.latestTsUs + 1;
      const everyUs = parseDuration(q.every, 'every');
      if (toUs < fromUs) throw new ValidationError('to', 'to must not be before from');
      if ((toUs - fromUs) / everyUs > MAX_BUCKETS) {
        throw new ValidationError('every', `every=${q.every} over this range makes more than ${MAX_BUCKETS} buckets; widen every or narrow from/to`);
      }
      const field: AggregateQuery['field'] = q.field === 'count' ? { kind: 'count' } : { kind: 'payload', name: q.field.slice('payload.'.length) };
      const fns = new Set(q.fn.split(',') as AggregateFn[]);
      const buckets = await deps.store.aggregate(d.deviceId, { fromUs, toUs, everyUs, field });
      return {
        buckets: buckets.map((b) => {
          const out: Record<string, unknown> = { start: formatUtc(b.startUs) };
          for (const fn of FNS) if (fns.has(fn)) out[fn] = b[fn];
          return out;
        }),
      };
    },
  );

  app.delete<{ Params: DeviceParams }>(
    '/v1/devices/:id',
    {
      config: { access: 'admin', deviceParam: 'id' },
      schema: {
        tags,
        summary: 'Remove a device and its readings (needs an admin key)',
        params: DeviceParams,
        response: { 204: { description: 'Removed', type: 'null' }, ...errorReplies(TallyErrorForm, [400, 401, 403, 404]) },
      },
    },
    async (request, reply) => {
      if (!(await deps.store.deleteDevice(request.params.id))) throw new NotFoundError(`device ${JSON.stringify(request.params.id)} not found`);
      return reply.code(204).send();
    },
  );

  done();
};
