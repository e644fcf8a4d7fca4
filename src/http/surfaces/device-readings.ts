import { Readable } from 'node:stream';
import type { FastifyPluginCallback } from 'fastify';
import { Type, type Static } from 'typebox';
import { NotFoundError } from '../../domain/errors.js';
import { formatUtc } from '../../domain/timestamp.js';
import { readingPages } from '../../store/pages.js';
import type { DeviceSummary, TelemetryStore } from '../../store/types.js';
import { errorReplies, OpenObject, reply as doc, TallyErrorForm } from '../docs.js';
import type { SurfaceDeps } from '../server.js';

/** Seed 004, the device readings API: reads. Timestamps come back exactly as they were sent. */

const DeviceParams = Type.Object({ deviceId: Type.String({ minLength: 1 }) });
type DeviceParams = Static<typeof DeviceParams>;

/** Readings read and rendered per step of the `data` map's stream: what bounds its memory. */
const STREAM_PAGE = 5000;

/**
 * The JSON of GET /devices/:id, `{"data":{...},"latest_timestamp":...,"cumulative_count":...}`,
 * produced page by page from a keyset cursor: however many readings the device has, the process
 * holds one page. A consumer that stops reading (a client gone) stops the pages.
 */
async function* deviceJson(store: TelemetryStore, device: DeviceSummary, latestText: string): AsyncGenerator<string> {
  yield '{"data":{';
  let first = true;
  for await (const page of readingPages(store, device.deviceId, { order: 'asc' }, STREAM_PAGE)) {
    let text = '';
    for (const r of page) {
      text += `${first ? '' : ','}${JSON.stringify(r.tsText ?? formatUtc(r.tsUs))}:${r.count === null ? 'null' : r.count}`;
      first = false;
    }
    yield text;
  }
  yield `},"latest_timestamp":${JSON.stringify(latestText)},"cumulative_count":${device.cumulativeCount}}`;
}

export const deviceReadingsSurface: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  async function summary(deviceId: string): Promise<DeviceSummary> {
    const device = await deps.store.getDevice(deviceId);
    if (device === undefined) throw new NotFoundError(`device ${JSON.stringify(deviceId)} not found`);
    return device;
  }
  const latest = (d: DeviceSummary) => d.latestTsText ?? formatUtc(d.latestTsUs);
  const tags = ['device-readings'];
  const description = '404 {"error":{"message"}} when the device has no readings. Timestamps as sent.';
  const errors = errorReplies(TallyErrorForm, [400, 404]);
  const latestSchema = {
    tags,
    summary: "The device's latest timestamp",
    description,
    params: DeviceParams,
    response: { 200: doc('Latest', Type.Object({ latest_timestamp: Type.String() }), { latest_timestamp: '2023-01-01T00:00:00Z' }), ...errors },
  };
  const countSchema = {
    tags,
    summary: 'Sum of all stored counts of the device',
    description,
    params: DeviceParams,
    response: { 200: doc('Cumulative count', Type.Object({ cumulative_count: Type.Integer() }), { cumulative_count: 300 }), ...errors },
  };
  const deviceSchema = {
    tags,
    summary: 'Every reading of the device (timestamp → count), its latest timestamp and cumulative count',
    description,
    params: DeviceParams,
    response: {
      200: doc(
        'The device',
        Type.Object({ data: OpenObject, latest_timestamp: Type.String(), cumulative_count: Type.Integer() }),
        { data: { '2023-01-01T00:00:00Z': 3, '2023-01-01T00:00:01Z': 2 }, latest_timestamp: '2023-01-01T00:00:01Z', cumulative_count: 5 },
      ),
      ...errors,
    },
  };

  app.get<{ Params: DeviceParams }>('/devices/:deviceId/latest_timestamp', { config: { deviceParam: 'deviceId' }, schema: latestSchema }, async (request) => ({
    latest_timestamp: latest(await summary(request.params.deviceId)),
  }));

  app.get<{ Params: DeviceParams }>('/devices/:deviceId/cumulative_count', { config: { deviceParam: 'deviceId' }, schema: countSchema }, async (request) => ({
    cumulative_count: (await summary(request.params.deviceId)).cumulativeCount,
  }));

  app.get<{ Params: DeviceParams }>('/devices/:deviceId', { config: { deviceParam: 'deviceId' }, schema: deviceSchema }, async (request, reply) => {
    const device = await summary(request.params.deviceId);
    // Streamed, not serialised whole: "every reading of the device" has no upper bound.
    return reply.type('application/json; charset=utf-8').send(Readable.from(deviceJson(deps.store, device, latest(device))));
  });

  done();
};
