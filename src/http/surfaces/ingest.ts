import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { ValidationError } from '../../domain/errors.js';
import { checkDeviceId } from '../../domain/reading.js';
import { ItemStatus, rejectionStatus } from '../../ingest/pipeline.js';
import type { ReadingShape } from '../../ingest/shape.js';
import { writablePrefix } from '../access.js';
import { AsSent, errorReplies, reply as doc, TallyErrorForm, WRITE_ERRORS } from '../docs.js';
import { limitReadings, readingsOf } from '../limits.js';
import type { SurfaceDeps } from '../server.js';

/**
 * POST /ingest is documented by two seeds with different bodies:
 * - Device readings (seed 004): `{id, readings: [{timestamp, count}]}`, each reading answered on its own;
 * - Records (seed 000): `{device_id, timestamp, data_payload}`, one record.
 * The body's fields tell them apart. Errors use Tally's shape, which extends seed 004's `{"error":{"message"}}`.
 */

const IngestBody = Type.Object(
  {},
  {
    description:
      'Either a device-readings body {id, readings:[{timestamp, count}]} or a record {device_id, timestamp, data_payload}',
    examples: [
      { id: '1234', readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 3 }] },
      { device_id: 'dev-1', timestamp: '2025-09-09T17:00:00Z', data_payload: { gene_count: 12, sample_quality: 0.98 } },
    ],
  },
);

const Result = Type.Object({
  id: Type.String(),
  timestamp: AsSent,
  success: Type.Boolean(),
  status: Type.Integer({ description: '202 stored, 409 duplicate, 400 invalid' }),
  error: Type.Optional(Type.String()),
});
const Results = Type.Object({ results: Type.Array(Result) });
const resultsExample = {
  results: [
    { id: '1234', timestamp: '2023-01-01T00:00:00Z', success: true, status: 202 },
    { id: '1234', timestamp: '2023-01-01T00:00:00Z', success: false, status: 409, error: 'a reading for this device at this timestamp was already recorded' },
  ],
};
const Status = Type.Object({ status: Type.String() });

const SHAPES =
  'body must be either {"id": string, "readings": [{"timestamp": string, "count": integer}]} ' +
  'or {"device_id": string, "timestamp": string, "data_payload": object}';

interface ReadingResult {
  id: string;
  timestamp: unknown;
  success: boolean;
  status: number;
  error?: string;
}

const DUPLICATE = 'a reading for this device at this timestamp was already recorded';

/**
 * The timestamp to echo in a result: as sent when it is a string (or another scalar), null when it
 * is missing, or an object or array, which no valid timestamp is and which could be nested too deep
 * to serialise.
 */
function echoTimestamp(value: unknown): unknown {
  return value === undefined || typeof value === 'object' ? null : value;
}

const readingPath = (i: number) => `readings[${i}].`;

function deviceReadingsShape(deviceId: string): ReadingShape {
  return {
    deviceId: { fixed: deviceId },
    ts: 'timestamp',
    count: { property: 'count', rule: 'required' },
    itemPath: readingPath,
    itemForm: '{timestamp, count}',
  };
}

function recordShape(deviceId: string): ReadingShape {
  return { deviceId: { fixed: deviceId }, ts: 'timestamp', payload: { property: 'data_payload', required: true }, itemForm: SHAPES };
}

async function ingestDeviceReadings(deps: SurfaceDeps, body: Record<string, unknown>, reply: FastifyReply, devicePrefix: string | undefined) {
  const deviceId = checkDeviceId(body.id, 'id');
  const raw = body.readings;
  if (!Array.isArray(raw)) throw new ValidationError('readings', 'readings must be an array of {timestamp, count}');
  if (raw.length === 0) throw new ValidationError('readings', 'readings must hold at least one reading');

  const outcome = await deps.ingest.write(raw, deviceReadingsShape(deviceId), { surface: 'device_readings', devicePrefix });
  const errors = new Map(outcome.rejections.map((r) => [r.index, r]));
  // Each entry carries the status of the request it belonged to when stored (202), as the original
  // service answered; 409 for a duplicate, 400 for an invalid reading.
  const results: ReadingResult[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const item = raw[i] as { timestamp?: unknown } | null;
    const timestamp = typeof item === 'object' && item !== null ? item.timestamp : undefined;
    const status = outcome.status[i];
    if (status === ItemStatus.Stored) results[i] = { id: deviceId, timestamp, success: true, status: 202 };
    else if (status === ItemStatus.Duplicate) results[i] = { id: deviceId, timestamp, success: false, status: 409, error: DUPLICATE };
    else {
      const rejection = errors.get(i)!;
      results[i] = { id: deviceId, timestamp: echoTimestamp(timestamp), success: false, status: rejectionStatus(rejection.error), error: rejection.error.message };
    }
  }
  return reply.code(outcome.stored === raw.length ? 202 : 207).send({ results });
}

async function ingestRecord(deps: SurfaceDeps, body: Record<string, unknown>, reply: FastifyReply, devicePrefix: string | undefined) {
  const deviceId = checkDeviceId(body.device_id, 'device_id');
  const outcome = await deps.ingest.write([body], recordShape(deviceId), { surface: 'records', devicePrefix });
  if (outcome.rejections.length > 0) throw outcome.rejections[0]!.error;
  return outcome.stored === 1 ? reply.code(201).send({ status: 'ok' }) : reply.code(200).send({ status: 'duplicate' });
}

export const ingestRoute: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  app.post<{ Body: Record<string, unknown> }>(
    '/ingest',
    {
      config: { access: 'ingest' },
      schema: {
        tags: ['device-readings', 'records'],
        summary: 'Store device readings {id, readings} or one record {device_id, timestamp, data_payload}',
        description: 'Errors: {"error":{"code","message","field"}}.',
        body: IngestBody,
        response: {
          200: doc('Record: a duplicate, nothing changed', Status, { status: 'duplicate' }),
          201: doc('Record: stored', Status, { status: 'ok' }),
          202: doc('Device readings: every reading stored', Results, { results: [resultsExample.results[0]] }),
          207: doc('Device readings: some readings not stored', Results, resultsExample),
          ...errorReplies(TallyErrorForm, WRITE_ERRORS),
        },
      },
      preValidation: limitReadings(deps.maxReadings, 'readings', readingsOf) },
    async (request, reply) => {
      const body = request.body;
      if ('readings' in body || 'id' in body) return ingestDeviceReadings(deps, body, reply, writablePrefix(request));
      if ('device_id' in body || 'data_payload' in body || 'timestamp' in body) return ingestRecord(deps, body, reply, writablePrefix(request));
      throw new ValidationError('body', SHAPES);
    },
  );
  done();
};
