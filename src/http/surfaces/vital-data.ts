import type { FastifyPluginCallback } from 'fastify';
import { Type, type Static } from 'typebox';
import { formatUtc } from '../../domain/timestamp.js';
import type { ReadingShape } from '../../ingest/shape.js';
import type { DeviceSort, DeviceSummary } from '../../store/types.js';
import { visiblePrefix, writablePrefix } from '../access.js';
import { sendProblem, type Problem } from '../errors.js';
import { errorReplies, reply as doc, WRITE_ERRORS, type ErrorForm } from '../docs.js';
import type { SurfaceDeps } from '../server.js';

/** Seed 003, vital data: integer-second timestamps, numeric vital fields, latest state of every device. */

const VitalBody = Type.Object(
  {
    device: Type.String({ minLength: 1, examples: ['fitband-alpha'] }),
    timestamp: Type.Integer({ description: 'Unix epoch seconds', examples: [1750240800] }),
  },
  { additionalProperties: Type.Number(), examples: [{ device: 'fitband-alpha', timestamp: 1750240800, heartRateValue: 88 }] },
);
type VitalBody = Static<typeof VitalBody>;

const SORTS = ['deviceId', 'heartRate', 'breathRate', 'timestamp'] as const;
const VitalQuery = Type.Object({
  count: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  // Bounded so the store is never handed an offset it cannot bind (1e20 was a 500).
  offset: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 }),
  sortBy: Type.Enum([...SORTS], { default: 'timestamp' }),
  orderBy: Type.Enum(['asc', 'desc'], { default: 'desc' }),
});
type VitalQuery = Static<typeof VitalQuery>;

const SORT_BY: Record<(typeof SORTS)[number], DeviceSort> = {
  deviceId: { by: 'deviceId' },
  heartRate: { by: 'payload', fields: ['heartRateValue', 'heartRate'] },
  breathRate: { by: 'payload', fields: ['breathRateValue', 'breathRate'] },
  timestamp: { by: 'latestTs' },
};

const tags = ['vital-data'];

/** A measurement as the pipeline reads it: the vitals (every field but device and timestamp) are its payload. */
const measurementShape: ReadingShape = {
  deviceId: { property: 'device' },
  ts: 'timestamp',
  epoch: { unit: 's' },
  payload: { property: 'vitals', required: false },
  itemForm: '{device, timestamp, ...vitals}',
};
const Nullable = (schema: ReturnType<typeof Type.Number>) => Type.Union([schema, Type.Null()]);
const Resource = Type.Object(
  {
    deviceId: Type.String(),
    heartRate: Nullable(Type.Number()),
    breathRate: Nullable(Type.Number()),
    bloodPressureSystolic: Nullable(Type.Number()),
    bloodPressureDiastolic: Nullable(Type.Number()),
    lastUpdated: Type.String(),
  },
  { additionalProperties: true, description: 'the latest reading of a device; extra vital fields are kept' },
);
const ERRORS = 'Invalid input: 400 {"status":"error","message":"Invalid payload","issues":[{"path","message"}]}.';

function renderError(problem: Problem): unknown {
  if (problem.status === 400) {
    const issues = problem.issues ?? [{ path: problem.field ? [problem.field] : [], message: problem.message }];
    return { status: 'error', message: 'Invalid payload', issues: issues.map((i) => ({ path: i.path, message: i.message })) };
  }
  return { status: 'error', message: problem.message };
}

const ErrorForm_: ErrorForm = {
  schema: Type.Object(
    {
      status: Type.String(),
      message: Type.String(),
      issues: Type.Optional(Type.Array(Type.Object({ path: Type.Array(Type.Unknown()), message: Type.String() }, { additionalProperties: true }))),
    },
    { additionalProperties: true },
  ),
  example: (status, _code, message) =>
    status === 400
      ? { status: 'error', message: 'Invalid payload', issues: [{ path: ['timestamp'], message: 'timestamp must be integer' }] }
      : { status: 'error', message },
};

function resourceOf(device: DeviceSummary) {
  const payload = device.latestPayload === null ? {} : (JSON.parse(device.latestPayload) as Record<string, unknown>);
  const { heartRateValue, heartRate, breathRateValue, breathRate, bloodPressureSystolic, bloodPressureDiastolic, ...rest } =
    payload;
  return {
    ...rest,
    deviceId: device.deviceId,
    heartRate: heartRateValue ?? heartRate ?? null,
    breathRate: breathRateValue ?? breathRate ?? null,
    bloodPressureSystolic: bloodPressureSystolic ?? null,
    bloodPressureDiastolic: bloodPressureDiastolic ?? null,
    lastUpdated: formatUtc(device.latestTsUs),
  };
}

export const vitalDataSurface: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  app.setErrorHandler((error, _request, reply) => sendProblem(reply, error, renderError));

  const postSchema = {
    tags,
    summary: 'Store one measurement (acknowledged after the commit)',
    description: ERRORS,
    body: VitalBody,
    response: { 202: doc('Stored', Type.Object({ status: Type.String() }), { status: 'accepted' }), ...errorReplies(ErrorForm_, WRITE_ERRORS) },
  };
  app.post<{ Body: VitalBody }>('/vital-data', { config: { access: 'ingest' }, schema: postSchema }, async (request, reply) => {
    const { device, timestamp, ...vitals } = request.body;
    const outcome = await deps.ingest.write([{ device, timestamp, vitals }], measurementShape, {
      surface: 'vital_data',
      devicePrefix: writablePrefix(request),
    });
    if (outcome.rejections.length > 0) throw outcome.rejections[0]!.error;
    return reply.code(202).send({ status: 'accepted' });
  });

  const getSchema = {
    tags,
    summary: 'Latest state of every device, sorted and paginated',
    description: ERRORS,
    querystring: VitalQuery,
    response: {
      200: doc('Latest state', Type.Object({ total: Type.Integer(), resources: Type.Array(Resource) }), {
        total: 1,
        resources: [
          { deviceId: 'fitband-alpha', heartRate: 88, breathRate: null, bloodPressureSystolic: null, bloodPressureDiastolic: null, lastUpdated: '2025-06-18T10:00:00Z' },
        ],
      }),
      ...errorReplies(ErrorForm_, [400]),
    },
  };
  app.get<{ Querystring: VitalQuery }>('/vital-data', { schema: getSchema }, async (request) => {
    const { count, offset, sortBy, orderBy } = request.query;
    // A device-bound key sees its own devices only, in the listing and in its total.
    const prefix = visiblePrefix(request, undefined);
    if (prefix === null) return { total: 0, resources: [] };
    const page = await deps.store.listDevices({ sort: SORT_BY[sortBy], order: orderBy, limit: count, offset, prefix, withTotal: true });
    return { total: page.total, resources: page.items.map(resourceOf) };
  });

  done();
};
