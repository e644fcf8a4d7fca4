import type { FastifyPluginCallback } from 'fastify';
import { Type, type Static } from 'typebox';
import { NotFoundError } from '../../domain/errors.js';
import { formatUtc } from '../../domain/timestamp.js';
import type { DeviceSummary } from '../../store/types.js';
import type { SurfaceDeps } from '../server.js';

/** Seed 004, the device readings API: reads. Timestamps come back exactly as they were sent. */

const DeviceParams = Type.Object({ deviceId: Type.String({ minLength: 1 }) });
type DeviceParams = Static<typeof DeviceParams>;

export const deviceReadingsSurface: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  async function summary(deviceId: string): Promise<DeviceSummary> {
    const device = await deps.store.getDevice(deviceId);
    if (device === undefined) throw new NotFoundError(`device ${JSON.stringify(deviceId)} not found`);
    return device;
  }
  const latest = (d: DeviceSummary) => d.latestTsText ?? formatUtc(d.latestTsUs);
  const schema = { params: DeviceParams };

  app.get<{ Params: DeviceParams }>('/devices/:deviceId/latest_timestamp', { schema }, async (request) => ({
    latest_timestamp: latest(await summary(request.params.deviceId)),
  }));

  app.get<{ Params: DeviceParams }>('/devices/:deviceId/cumulative_count', { schema }, async (request) => ({
    cumulative_count: (await summary(request.params.deviceId)).cumulativeCount,
  }));

  app.get<{ Params: DeviceParams }>('/devices/:deviceId', { schema }, async (request) => {
    const device = await summary(request.params.deviceId);
    const data: Record<string, number | null> = {};
    for (const r of await deps.store.deviceReadings(device.deviceId, { order: 'asc' })) {
      data[r.tsText ?? formatUtc(r.tsUs)] = r.count;
    }
    return { data, latest_timestamp: latest(device), cumulative_count: device.cumulativeCount };
  });

  done();
};
