import { pipeline, Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { ValidationError } from '../../../domain/errors.js';
import type { Reading } from '../../../domain/reading.js';
import { formatUtc } from '../../../domain/timestamp.js';
import { readingPages } from '../../../store/pages.js';
import type { TelemetryStore } from '../../../store/types.js';
import { visiblePrefix } from '../../access.js';
import { errorReplies, TallyErrorForm } from '../../docs.js';
import type { SurfaceDeps } from '../../server.js';
import { queryInstant, readingItem } from './format.js';

/**
 * Readings out in the formats analysis tools read: NDJSON (a /v1 reading object per line) or CSV
 * (device_id, ts, count, then a column per payload field). Streamed from keyset pages, device by
 * device, so memory stays the size of a page whatever the range; a client that goes away stops it.
 */

export type ExportFormat = 'ndjson' | 'csv';

/** Readings read per page. */
const PAGE = 5000;

/** The format asked for by `?format=`, else by the Accept header; undefined for JSON. */
export function exportFormat(request: FastifyRequest, format: string | undefined): ExportFormat | undefined {
  if (format === 'ndjson' || format === 'csv') return format;
  if (format === 'json') return undefined;
  const accept = request.headers.accept ?? '';
  if (accept.includes('text/csv')) return 'csv';
  if (accept.includes('application/x-ndjson')) return 'ndjson';
  return undefined;
}

export interface ExportRange {
  readonly fromUs?: number;
  readonly toUs?: number;
  readonly order: 'asc' | 'desc';
}

/** Every reading of each device in `devices`, in the range, page by page. */
async function* readingsOf(store: TelemetryStore, devices: AsyncIterable<string>, range: ExportRange): AsyncGenerator<Reading> {
  for await (const deviceId of devices) for await (const page of readingPages(store, deviceId, range, PAGE)) yield* page;
}

/** Device ids with readings, in id order, optionally only those starting with `prefix`. */
export async function* devicesWith(store: TelemetryStore, prefix: string | undefined): AsyncGenerator<string> {
  let cursor: string | undefined;
  do {
    const page = await store.listDevices({ sort: { by: 'deviceId' }, order: 'asc', limit: 1000, prefix, cursor });
    for (const device of page.items) yield device.deviceId;
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
}

async function* one(deviceId: string): AsyncGenerator<string> {
  yield deviceId;
}

async function* none(): AsyncGenerator<string> {}

async function* ndjsonLines(readings: AsyncIterable<Reading>): AsyncGenerator<string> {
  for await (const r of readings) yield `${JSON.stringify(readingItem(r))}\n`;
}

/** The payload fields of every reading, in the order first seen: a pass that keeps only their names. */
async function fieldsSeen(readings: AsyncIterable<Reading>): Promise<string[]> {
  const seen = new Set<string>();
  for await (const r of readings) {
    if (r.payload === null) continue;
    for (const key of Object.keys(JSON.parse(r.payload) as object)) seen.add(key);
  }
  return [...seen];
}

function cell(value: unknown): unknown {
  return value !== null && typeof value === 'object' ? JSON.stringify(value) : value;
}

async function* csvRows(readings: AsyncIterable<Reading>, fields: readonly string[]): AsyncGenerator<unknown[]> {
  for await (const r of readings) {
    const payload = r.payload === null ? null : (JSON.parse(r.payload) as Record<string, unknown>);
    yield [r.deviceId, formatUtc(r.tsUs), r.count, ...fields.map((f) => cell(payload?.[f]))];
  }
}

/**
 * Streams the readings of `deviceId` (or, with undefined, of every device with `prefix`) in `range`
 * as `format`. For CSV without `fields`, the columns are the union of the payload fields in the
 * range, found by a first pass that reads the same pages and keeps only the names.
 */
export async function sendExport(
  reply: FastifyReply,
  store: TelemetryStore,
  format: ExportFormat,
  /** One device, or the devices with a prefix (all of them without one), or none (`nothing`). */
  target: { readonly deviceId: string } | { readonly prefix?: string } | { readonly nothing: true },
  range: ExportRange,
  fields?: readonly string[],
): Promise<FastifyReply> {
  const devices = () => ('deviceId' in target ? one(target.deviceId) : 'nothing' in target ? none() : devicesWith(store, target.prefix));
  if (format === 'ndjson') {
    return reply.type('application/x-ndjson; charset=utf-8').send(Readable.from(ndjsonLines(readingsOf(store, devices(), range))));
  }
  const columns = fields ?? (await fieldsSeen(readingsOf(store, devices(), range)));
  const csv = stringify({
    header: true,
    columns: ['device_id', 'ts', 'count', ...columns.map((f) => `payload.${f}`)],
    // csv-stringify writes false as an empty cell, which reads back as no field: say it.
    cast: { boolean: (value) => (value ? 'true' : 'false') },
  });
  pipeline(Readable.from(csvRows(readingsOf(store, devices(), range), columns)), csv, () => {
    // an error or a client gone: the response ends with the stream
  });
  return reply.type('text/csv; charset=utf-8').send(csv);
}

const FIELDS_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,63}(,[A-Za-z_][A-Za-z0-9_]{0,63})*$';

/** Query parameters of an export: the format and, for CSV, the payload columns. */
export const ExportParams = {
  format: Type.Optional(Type.Enum(['json', 'ndjson', 'csv'], { description: 'json (pages, the default), or the whole range streamed as ndjson or csv; or ask with Accept' })),
  fields: Type.Optional(Type.String({ pattern: FIELDS_PATTERN, description: 'CSV: payload fields to make columns of (default: every field seen in the range)' })),
};

export const fieldList = (fields: string | undefined) => (fields === undefined ? undefined : fields.split(','));

const ExportQuery = Type.Object({
  from: Type.Optional(Type.String({ description: 'RFC 3339, inclusive' })),
  to: Type.Optional(Type.String({ description: 'RFC 3339, exclusive' })),
  prefix: Type.Optional(Type.String({ maxLength: 256, description: 'only devices whose id starts with this' })),
  format: Type.Optional(Type.Enum(['ndjson', 'csv'], { description: 'default ndjson, or as the Accept header asks' })),
  fields: ExportParams.fields,
});
type ExportQuery = Static<typeof ExportQuery>;

/** GET /v1/export: every device's readings (or those with a prefix) in a range, streamed. */
export const v1ExportRoute: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  app.get<{ Querystring: ExportQuery }>(
    '/v1/export',
    {
      schema: {
        tags: ['v1'],
        summary: 'Every reading in a range, device by device, as NDJSON or CSV (streamed)',
        querystring: ExportQuery,
        response: {
          200: { description: 'NDJSON: a /v1 reading per line; CSV: device_id, ts, count, payload.<field>...', content: { 'application/x-ndjson': { schema: { type: 'string' } }, 'text/csv': { schema: { type: 'string' } } } },
          ...errorReplies(TallyErrorForm, [400]),
        },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const fromUs = queryInstant(q.from, 'from');
      const toUs = queryInstant(q.to, 'to');
      if (fromUs !== undefined && toUs !== undefined && toUs < fromUs) throw new ValidationError('to', 'to must not be before from');
      const format = exportFormat(request, q.format) ?? 'ndjson';
      // A device-bound key exports its own devices only; `null`: none of them has the prefix asked for.
      const prefix = visiblePrefix(request, q.prefix);
      return sendExport(reply, deps.store, format, prefix === null ? { nothing: true } : { prefix }, { fromUs, toUs, order: 'asc' }, fieldList(q.fields));
    },
  );
  done();
};
