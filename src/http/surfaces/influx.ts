import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import { Type, type Static } from 'typebox';
import { forEachLine, LineProtocolError, type LineError, type Precision } from '../../ingest/line-protocol.js';
import { LineProtocolMapper, lineProtocolShape, type LineProtocolItem, type LineProtocolMapping } from '../../ingest/line-protocol-mapping.js';
import { ItemStatus, rejectionStatus } from '../../ingest/pipeline.js';
import type { DeviceRateLimitedError } from '../../domain/errors.js';
import { writablePrefix } from '../access.js';
import { errorReplies, WRITE_ERRORS, type ErrorForm } from '../docs.js';
import { sendProblem, type Problem } from '../errors.js';
import type { SurfaceDeps } from '../server.js';

/**
 * InfluxDB line protocol writes, on the paths its clients use: POST /write (1.x) and POST
 * /api/v2/write (2.x). Each line is a reading, mapped as line-protocol-mapping.ts says.
 * Answers as InfluxDB's clients expect: 204 when every line was written (stored or a duplicate),
 * 400 `{code, message, line}` naming the first bad line while the good lines are kept.
 */

const V1Query = Type.Object({
  db: Type.Optional(Type.String({ description: 'accepted and ignored: Tally has one store' })),
  rp: Type.Optional(Type.String({ description: 'accepted and ignored' })),
  precision: Type.Enum(['ns', 'us', 'ms', 's', 'u', 'n'], { default: 'ns', description: 'unit of the timestamps (default ns, as InfluxDB)' }),
});
const V2Query = Type.Object({
  org: Type.Optional(Type.String({ description: 'accepted and ignored' })),
  bucket: Type.Optional(Type.String({ description: 'accepted and ignored: Tally has one store' })),
  precision: Type.Enum(['ns', 'us', 'ms', 's'], { default: 'ns', description: 'unit of the timestamps (default ns, as InfluxDB)' }),
});
type WriteQuery = Static<typeof V1Query> | Static<typeof V2Query>;

const tags = ['line-protocol'];

/** InfluxDB's error body: `{code, message}`, with `line` for a bad line. */
function renderError(problem: Problem): unknown {
  const code =
    problem.status === 413 ? 'request too large' : problem.status === 429 ? 'too many requests' : problem.status >= 500 ? 'unavailable' : 'invalid';
  return { code, message: problem.message };
}

const InfluxErrorForm: ErrorForm = {
  schema: Type.Object({ code: Type.String(), message: Type.String(), line: Type.Optional(Type.Integer()) }, { additionalProperties: true }),
  example: (status, _code, message) =>
    status === 400 ? { code: 'invalid', message: 'line 2: field "temp" has an invalid value "hot"', line: 2 } : { code: status === 413 ? 'request too large' : 'unavailable', message },
};

async function write(deps: SurfaceDeps, mapping: LineProtocolMapping, body: string, query: WriteQuery, reply: FastifyReply, devicePrefix: string | undefined) {
  const precision: Precision = query.precision === 'u' ? 'us' : query.precision === 'n' ? 'ns' : query.precision;
  const mapper = new LineProtocolMapper(mapping, precision);
  const nowUs = Date.now() * 1000;
  const items: LineProtocolItem[] = [];
  const lines: number[] = [];
  const errors: LineError[] = [];
  forEachLine(body, (line, lineNumber) => {
    try {
      items.push(mapper.item(line, nowUs));
      lines.push(lineNumber);
    } catch (err) {
      if (!(err instanceof LineProtocolError)) throw err;
      errors.push({ line: lineNumber, message: err.message });
    }
  });
  if (errors.length > 0) deps.ingest.refused('line_protocol', errors.length);
  const outcome = await deps.ingest.write(items, lineProtocolShape, { surface: 'line_protocol', devicePrefix });
  const bad = [...errors];
  for (const { index, error } of outcome.rejections) bad.push({ line: lines[index]!, message: error.message });
  if (bad.length === 0) return reply.code(204).send();
  bad.sort((a, b) => a.line - b.line);
  const first = bad[0]!;
  const written = outcome.status.filter((s) => s === ItemStatus.Stored || s === ItemStatus.Duplicate).length;
  if (written === 0 && errors.length === 0) {
    // Nothing written, and every line refused for its device: the key was the problem (InfluxDB's
    // 403), or the device's rate (a 429 its clients retry after Retry-After).
    const statuses = new Set(outcome.rejections.map((r) => rejectionStatus(r.error)));
    if (statuses.size === 1 && statuses.has(403)) return reply.code(403).send({ code: 'forbidden', message: `line ${first.line}: ${first.message}`, line: first.line });
    if (statuses.size === 1 && statuses.has(429)) {
      const retry = Math.max(...outcome.rejections.map((r) => (r.error as DeviceRateLimitedError).retryAfterSeconds));
      return reply.code(429).header('retry-after', String(retry)).send({ code: 'too many requests', message: `line ${first.line}: ${first.message}`, line: first.line });
    }
  }
  return reply.code(400).send({
    code: 'invalid',
    message: `line ${first.line}: ${first.message} (${bad.length} line${bad.length === 1 ? '' : 's'} rejected, ${written} written)`,
    line: first.line,
  });
}

/** The body's text: Fastify parses no empty body, so a request without one has none (undefined). */
function textOf(body: unknown): string {
  return typeof body === 'string' ? body : '';
}

export const influxSurface: FastifyPluginCallback<SurfaceDeps & { lineProtocol: LineProtocolMapping }> = (app, deps, done) => {
  app.setErrorHandler((error, _request, reply) => sendProblem(reply, error, renderError));
  // Line protocol is text, whatever the client calls it (text/plain, or nothing at all); the body
  // limit applies, to the decompressed size when it came gzipped.
  // Every parser removed first: the root's JSON parser would otherwise take a body sent as
  // application/json, and hand write() an object (a 500), or refuse valid lines as bad JSON.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, parsed) => parsed(null, body));

  const responses = {
    204: { description: 'Every line written (stored, or a duplicate of a stored reading)', type: 'null' },
    ...errorReplies(InfluxErrorForm, WRITE_ERRORS.filter((s) => s !== 415)),
  };
  const description =
    'Body: InfluxDB line protocol, one reading per line. The device is the tag TALLY_LP_DEVICE_TAG (default device), or the ' +
    'measurement; the integer field TALLY_LP_COUNT_FIELD (default count) is the count; other fields and tags, and the measurement, ' +
    'are the payload. gzip bodies (Content-Encoding: gzip) are accepted.';
  const body = { content: { 'text/plain': { schema: { type: 'string', examples: ['meters,device=meter-1 count=3i,temp=21.5 1750240800000000000'] } } } };

  app.post<{ Querystring: Static<typeof V1Query>; Body: string }>(
    '/write',
    { config: { access: 'ingest' }, schema: { tags, summary: 'Write line protocol (InfluxDB 1.x path)', description, querystring: V1Query, body, response: responses } },
    async (request, reply) => write(deps, deps.lineProtocol, textOf(request.body), request.query, reply, writablePrefix(request)),
  );
  app.post<{ Querystring: Static<typeof V2Query>; Body: string }>(
    '/api/v2/write',
    { config: { access: 'ingest' }, schema: { tags, summary: 'Write line protocol (InfluxDB 2.x path)', description, querystring: V2Query, body, response: responses } },
    async (request, reply) => write(deps, deps.lineProtocol, textOf(request.body), request.query, reply, writablePrefix(request)),
  );
  done();
};
