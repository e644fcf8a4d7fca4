import Ajv from 'ajv';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { GroupCommitBatcher } from '../ingest/batcher.js';
import type { TelemetryStore } from '../store/types.js';
import { sendProblem, tallyErrorBody } from './errors.js';
import { brightCounterSurface } from './surfaces/bright-counter.js';
import { deviceReadingsSurface } from './surfaces/device-readings.js';
import { ingestRoute } from './surfaces/ingest.js';
import { recordsSurface } from './surfaces/records.js';
import { vitalDataSurface } from './surfaces/vital-data.js';

/** What every surface is handed: the pipeline for writes, the store for reads, and the limits. */
export interface SurfaceDeps {
  readonly store: TelemetryStore;
  readonly batcher: GroupCommitBatcher;
  /** Readings one request may carry. */
  readonly maxReadings: number;
}

export interface HttpOptions {
  readonly bodyLimit: number;
  readonly logger: FastifyServerOptions['logger'];
}

/**
 * Bodies are validated strictly: a string where a number belongs is an error, never coerced.
 * Query strings and path parameters arrive as text, so their numbers are coerced.
 */
const bodyAjv = new Ajv.default({ coerceTypes: false, allErrors: true, removeAdditional: false, useDefaults: true });
const textAjv = new Ajv.default({ coerceTypes: true, allErrors: true, removeAdditional: false, useDefaults: true });

export function buildServer(deps: SurfaceDeps, options: HttpOptions): FastifyInstance {
  const app = Fastify({
    bodyLimit: options.bodyLimit,
    logger: options.logger,
    // A log line per request would cost more than storing the reading; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // Nothing Tally serves needs prototype keys; refuse them rather than parse them.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body' ? bodyAjv.compile(schema) : textAjv.compile(schema),
  );
  // JSON only: a text/plain body to a JSON endpoint is a 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: 'NotFound', message: `no route for ${request.method} ${request.url.split('?')[0]}` } }),
  );
  app.setErrorHandler((error, _request, reply) => sendProblem(reply, error, tallyErrorBody));

  app.register(brightCounterSurface, deps);
  app.register(ingestRoute, deps);
  app.register(deviceReadingsSurface, deps);
  app.register(recordsSurface, deps);
  app.register(vitalDataSurface, deps);
  return app;
}
