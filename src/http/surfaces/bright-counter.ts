import type { FastifyPluginCallback } from 'fastify';
import { Type, type Static } from 'typebox';
import { NotFoundError } from '../../domain/errors.js';
import { checkUuid } from '../../domain/reading.js';
import { formatStrftimeZ, parseTimestamp } from '../../domain/timestamp.js';
import type { ReadingShape } from '../../ingest/shape.js';
import type { DeviceSummary } from '../../store/types.js';
import { writablePrefix } from '../access.js';
import { sendProblem, type Problem } from '../errors.js';
import { errorReplies, reply as doc, WRITE_ERRORS, type ErrorForm } from '../docs.js';
import { limitReadings, readingsOf } from '../limits.js';
import type { SurfaceDeps } from '../server.js';

/** Seed 002, "Bright Counter": UUID devices, positive counts, all-or-nothing batches. */

const CreateBody = Type.Object({
  id: Type.String({ description: 'Device id, a UUID', examples: ['063c5957-8905-45f9-bfe3-960713788919'] }),
  readings: Type.Array(
    Type.Object({
      count: Type.Integer({ description: 'Positive integer', examples: [9] }),
      timestamp: Type.String({ description: 'ISO 8601 with a zone', examples: ['2021-09-29T16:09:15+01:00'] }),
    }),
    { minItems: 1 },
  ),
});
type CreateBody = Static<typeof CreateBody>;

const DeviceParams = Type.Object({ id: Type.String() });
type DeviceParams = Static<typeof DeviceParams>;

const OK = { status: 'ok' } as const;
const tags = ['bright-counter'];
const Status = Type.Object({ status: Type.String() });
const ERRORS = 'Errors: {"status":"error","error_message":"...","status_code":N}.';

function renderError(problem: Problem): unknown {
  return { status: 'error', error_message: problem.message, status_code: problem.status };
}

const ErrorForm_: ErrorForm = {
  schema: Type.Object(
    { status: Type.String(), error_message: Type.String(), status_code: Type.Integer() },
    { additionalProperties: true },
  ),
  example: (status, _code, message) => ({ status: 'error', error_message: message, status_code: status }),
};

const readingPath = (i: number) => `readings[${i}].`;

/** One device's readings: positive counts, RFC 3339 timestamps. */
function shapeFor(deviceId: string): ReadingShape {
  return {
    deviceId: { fixed: deviceId },
    ts: 'timestamp',
    count: { property: 'count', rule: 'positive' },
    itemPath: readingPath,
    itemForm: '{count, timestamp}',
  };
}

export const brightCounterSurface: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  app.setErrorHandler((error, _request, reply) => sendProblem(reply, error, renderError));

  async function summary(id: string): Promise<DeviceSummary> {
    const deviceId = checkUuid(id, 'id');
    const device = await deps.store.getDevice(deviceId);
    if (device === undefined) throw new NotFoundError(`device ${deviceId} has no stored readings`);
    return device;
  }

  app.get(
    '/api/ping',
    { config: { access: 'open' }, schema: { tags, summary: 'Uptime check', response: { 200: doc('Up', Status, OK) } } },
    async () => OK,
  );

  app.post<{ Body: CreateBody }>(
    '/api/device-readings/create',
    {
      config: { access: 'ingest' },
      schema: {
        tags,
        summary: 'Store readings of one device, all or nothing',
        description: `id must be a UUID; counts must be > 0; one invalid reading stores nothing (400); duplicates are ignored. ${ERRORS}`,
        body: CreateBody,
        response: { 201: doc('Stored (committed)', Status, OK), ...errorReplies(ErrorForm_, WRITE_ERRORS) },
      },
      preValidation: limitReadings(deps.maxReadings, 'readings', readingsOf) },
    async (request, reply) => {
      const { id, readings } = request.body;
      // All or nothing: the first bad reading is the 400, and nothing is stored.
      const outcome = await deps.ingest.write(readings, shapeFor(checkUuid(id, 'id')), {
        atomic: true,
        firstErrorOnly: true,
        surface: 'bright_counter',
        devicePrefix: writablePrefix(request),
      });
      if (outcome.rejections.length > 0) throw outcome.rejections[0]!.error;
      return reply.code(201).send(OK);
    },
  );

  app.get<{ Params: DeviceParams }>(
    '/api/device-readings/:id/latest-timestamp',
    {
      config: { deviceParam: 'id' },
      schema: {
        tags,
        summary: "The device's latest timestamp, in the offset it was sent with",
        description: `404 when the device has no readings. ${ERRORS}`,
        params: DeviceParams,
        response: {
          200: doc('Latest timestamp', Type.Object({ timestamp: Type.String() }), { timestamp: '2021-09-29T16:09:15+0100' }),
          ...errorReplies(ErrorForm_, [400, 404]),
        },
      },
    },
    async (request) => {
      const device = await summary(request.params.id);
      const offset = device.latestTsText === null ? 0 : parseTimestamp(device.latestTsText, 'timestamp').offsetMinutes;
      return { timestamp: formatStrftimeZ(device.latestTsUs, offset) };
    },
  );

  app.get<{ Params: DeviceParams }>(
    '/api/device-readings/:id/cumulative-count',
    {
      config: { deviceParam: 'id' },
      schema: {
        tags,
        summary: 'Sum of all stored counts of the device',
        description: `404 when the device has no readings. ${ERRORS}`,
        params: DeviceParams,
        response: {
          200: doc('Cumulative count', Type.Object({ cumulative_count: Type.Integer() }), { cumulative_count: 23 }),
          ...errorReplies(ErrorForm_, [400, 404]),
        },
      },
    },
    async (request) => ({ cumulative_count: (await summary(request.params.id)).cumulativeCount }),
  );

  done();
};
