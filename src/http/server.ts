import { randomBytes } from 'node:crypto';
import Ajv from 'ajv';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifySchemaValidationError, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import compress from '@fastify/compress';
import { LIMITS } from '../domain/reading.js';
import type { GroupCommitBatcher } from '../ingest/batcher.js';
import type { LineProtocolMapping } from '../ingest/line-protocol-mapping.js';
import type { IngestPipeline } from '../ingest/pipeline.js';
import type { TelemetryStore } from '../store/types.js';
import { enforceAccess, type AccessOptions } from './access.js';
import { limitByAddress } from './address-limit.js';
import { RateLimiter, type RateLimitName } from '../domain/rate-limit.js';
import { applyConnectionCap, fastifyServerOptions, type HttpServerConfig } from './server-config.js';
import { sendProblem, tallyErrorBody } from './errors.js';
import { brightCounterSurface } from './surfaces/bright-counter.js';
import { deviceReadingsSurface } from './surfaces/device-readings.js';
import { influxSurface } from './surfaces/influx.js';
import { ingestRoute } from './surfaces/ingest.js';
import { operationsSurface, type OperationsDeps } from './surfaces/operations.js';
import { recordsSurface } from './surfaces/records.js';
import { v1Surface } from './surfaces/v1/index.js';
import { vitalDataSurface } from './surfaces/vital-data.js';

/** What every surface is handed: the pipeline for writes, the store for reads, and the limits. */
export interface SurfaceDeps {
  readonly store: TelemetryStore;
  /** Every write goes through it: checks, retention, group commit. */
  readonly ingest: IngestPipeline;
  /** For the write queue's figures (GET /check-buffer) only. */
  readonly batcher: GroupCommitBatcher;
  /** Readings one request may carry. */
  readonly maxReadings: number;
  /** How line protocol maps onto readings. */
  readonly lineProtocol: LineProtocolMapping;
}

export interface HttpAccess {
  /** Who may call what: the auth mode and the keys (see access.ts). */
  readonly access: AccessOptions;
}

export interface HttpOptions {
  readonly bodyLimit: number;
  readonly logger: FastifyServerOptions['logger'];
  /** One `debug` line per request (TALLY_REQUEST_LOG=on). */
  readonly requestLog?: boolean;
  /** Told of every answered request (metrics). */
  readonly observer?: HttpObserver;
  /** /metrics, /healthz and /readyz; absent, those routes are not served. */
  readonly operations?: OperationsDeps;
  /** Timeouts, caps, the rate per address and TLS; absent (in-process tests), Node's and Fastify's defaults. */
  readonly limits?: HttpServerConfig;
}

/**
 * Client addresses the per-address limiter tracks at once: its memory stays under about 14 MiB
 * (220 bytes a bucket, measured with IPv6 keys) however many addresses send.
 */
export const ADDRESS_LIMITER_CAPACITY = 65_536;

/** What is told of each answered request, once, after its last byte. */
export interface HttpObserver {
  /** `route` is the route template, undefined when no route matched; `seconds` the request's latency. */
  httpResponse(method: string, route: string | undefined, status: number, seconds: number): void;
  /** A request refused with 429 by the named limit. */
  rateLimited?(limit: RateLimitName): void;
}

/** A request id a client may choose: short, and only characters that are safe in a log line or header. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * New request ids: a random prefix per process and a counter, e.g. `3f9c1a7b0e2d-1a2b`. Unique
 * within the process and, by the 48 random bits, across processes; a UUID per request cost 0.7 µs
 * (bench/metrics.ts), this about 0.05 µs.
 */
const ID_PREFIX = randomBytes(6).toString('hex');
let lastId = 0;

/** The client's X-Request-Id when it is safe to reuse, otherwise a new one. */
export function requestId(request: { headers: Record<string, string | string[] | undefined> }): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : `${ID_PREFIX}-${(++lastId).toString(36)}`;
}

/**
 * Paths pino replaces with [Redacted] in every log line: credentials must never reach a log, whoever
 * logs a request or its headers.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers.cookie',
  'authorization',
  'password',
  '*.password',
  'adminToken',
  '*.adminToken',
];

/**
 * Bodies are validated strictly: a string where a number belongs is an error, never coerced.
 * Query strings and path parameters arrive as text, so their numbers are coerced. strictNumbers
 * refuses Infinity (1e309 in a JSON body) where a number belongs.
 */
const bodyAjv = new Ajv.default({ coerceTypes: false, allErrors: true, removeAdditional: false, useDefaults: true, strictNumbers: true });
const textAjv = new Ajv.default({ coerceTypes: true, allErrors: true, removeAdditional: false, useDefaults: true, verbose: true, strictNumbers: true });

type Validate = ((data: unknown) => boolean) & { errors?: FastifySchemaValidationError[] | null };

/**
 * Ajv checks a coerced number's type before coercing it and its bounds only when it is finite, so
 * `?count=1e309` passed as an integer within any minimum and maximum, and the store was handed
 * Infinity (a 503 "datatype mismatch"). Query strings and path parameters are flat objects (or
 * arrays of values): a non-finite number among their values is refused here, naming it.
 */
function finiteNumbers(validate: Validate): Validate {
  const wrapped: Validate = (data) => {
    const ok = validate(data);
    wrapped.errors = validate.errors;
    if (!ok || typeof data !== 'object' || data === null) return ok;
    for (const [key, value] of Object.entries(data)) {
      const values: unknown[] = Array.isArray(value) ? value : [value];
      if (values.some((v) => typeof v === 'number' && !Number.isFinite(v))) {
        wrapped.errors = [{ instancePath: `/${key}`, keyword: 'type', params: {}, message: 'must be a finite number', schemaPath: '#' }];
        return false;
      }
    }
    return true;
  };
  return wrapped;
}

export function buildServer(deps: SurfaceDeps, options: HttpOptions & HttpAccess): FastifyInstance {
  const limits = options.limits;
  const app = Fastify({
    ...(limits === undefined ? {} : (fastifyServerOptions(limits) as object)),
    bodyLimit: options.bodyLimit,
    logger: options.logger,
    // Every log line of a request carries its id (as reqId): the client's X-Request-Id when it is
    // safe, otherwise a new one. Echoed in the answer's x-request-id header.
    requestIdHeader: false,
    genReqId: requestId,
    // A device id may be 256 characters, and a path parameter is measured percent-encoded (up to
    // 12 characters for one: four UTF-8 bytes): Fastify's default of 100 made longer ids unreadable.
    routerOptions: { maxParamLength: LIMITS.deviceIdMaxLength * 12 },
    // Errors raised before routing (a malformed URL, an over-long path parameter) in Tally's shape.
    frameworkErrors: (error, _request, reply) => {
      const status = (error as { statusCode?: number }).statusCode ?? 400;
      void (reply as FastifyReply).code(status).send(tallyErrorBody({ status, code: 'InvalidInput', message: error.message, field: 'url' }));
    },
    // A log line per request would cost more than storing the reading; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // Nothing Tally serves needs prototype keys; refuse them rather than parse them.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body' ? bodyAjv.compile(schema) : finiteNumbers(textAjv.compile(schema)),
  );
  // JSON only: a text/plain body to a JSON endpoint is a 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(tallyErrorBody({ status: 404, code: 'NotFound', message: `no route for ${request.method} ${request.url.split('?')[0]}` })),
  );
  app.setErrorHandler((error, _request, reply) => sendProblem(reply, error, tallyErrorBody));
  enforceAccess(app, options.access);
  // gzip and deflate request bodies on every route, decompressed as they stream in: the body
  // limit counts decompressed bytes, so a small bomb is a 413, not memory. Answers are not compressed.
  app.register(compress, { globalCompression: false, globalDecompression: true, requestEncodings: ['gzip', 'deflate'] });
  observeRequests(app, options);
  if (limits !== undefined) {
    applyConnectionCap(app.server, limits);
    // The first check of a request (after its id is set): a refused request costs a map lookup,
    // and no body is read and no key checked (route-level hooks, as access's, run after this one).
    if (limits.rateAddress !== undefined) {
      const limiter = new RateLimiter(limits.rateAddress, { capacity: ADDRESS_LIMITER_CAPACITY });
      limitByAddress(app, { limiter, onLimited: () => options.observer?.rateLimited?.('address') });
    }
  }

  // The schemas that validate requests also describe them: /openapi.json and a browsable /docs.
  app.register(swagger, {
    openapi: {
      info: {
        title: 'Tally',
        version: '0.1.0',
        description:
          'Durable, fast ingestion of device readings. Every 2xx to a write is sent after the commit holding its readings. ' +
          "Besides Tally's own /v1 API, the APIs of four earlier services are served exactly as they documented them.",
      },
      tags: [
        { name: 'v1', description: "Tally's own API: errors are {\"error\":{\"code\",\"message\",\"field\"}}" },
        { name: 'bright-counter', description: 'Bright Counter: UUID devices, positive counts, all-or-nothing batches' },
        { name: 'device-readings', description: 'Device readings: per-reading results, timestamps echoed as sent' },
        { name: 'records', description: 'Records: availability, records newest first, the write buffer' },
        { name: 'vital-data', description: 'Vital data: epoch-second measurements, latest state of every device' },
        { name: 'line-protocol', description: 'InfluxDB line protocol writes, on the 1.x and 2.x paths its clients use' },
        { name: 'operations', description: 'Metrics (Prometheus), liveness and readiness: open routes for operators' },
      ],
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs' });
  app.register(async (docs) => {
    docs.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });

  if (options.operations !== undefined) app.register(operationsSurface, options.operations);
  app.register(v1Surface, deps);
  app.register(brightCounterSurface, deps);
  app.register(ingestRoute, deps);
  app.register(deviceReadingsSurface, deps);
  app.register(recordsSurface, deps);
  app.register(vitalDataSurface, deps);
  app.register(influxSurface, deps);
  return app;
}

/**
 * Request ids in answers, metrics and the optional request log: one onRequest and one onResponse
 * hook for every request, each a few property reads (the request log's line only when it is on).
 */
function observeRequests(app: FastifyInstance, options: HttpOptions): void {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  const { observer, requestLog } = options;
  if (observer === undefined && !requestLog) return;
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url;
    if (observer !== undefined) observer.httpResponse(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    if (requestLog) {
      // The path without its query; never headers or bodies.
      const url = request.url;
      const q = url.indexOf('?');
      request.log.debug(
        { method: request.method, url: q === -1 ? url : url.slice(0, q), route: route ?? null, statusCode: reply.statusCode, responseTimeMs: Math.round(reply.elapsedTime * 100) / 100 },
        'request',
      );
    }
    done();
  });
}
