import type { FastifyPluginCallback } from 'fastify';
import { sendProblem, tallyErrorBody } from '../../errors.js';
import type { SurfaceDeps } from '../../server.js';
import { v1DevicesRoutes } from './devices.js';
import { v1ExportRoute } from './export.js';
import { v1ReadingsRoute } from './readings.js';

/** Tally's own API. Errors: `{"error": {"code", "message", "field"?}}`. */
export const v1Surface: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  app.setErrorHandler((error, _request, reply) => sendProblem(reply, error, tallyErrorBody));
  app.register(v1ReadingsRoute, deps);
  app.register(v1DevicesRoutes, deps);
  app.register(v1ExportRoute, deps);
  done();
};
