import type { Readable } from 'node:stream';
import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import { Type, type Static } from 'typebox';
import { DeviceRateLimitedError, TooManyReadingsError, ValidationError } from '../../../domain/errors.js';
import { rejectionStatus, type IngestOutcome, type RejectionError, type WriteOptions } from '../../../ingest/pipeline.js';
import type { ReadingShape } from '../../../ingest/shape.js';
import { writablePrefix } from '../../access.js';
import { HttpError } from '../../errors.js';
import { errorReplies, reply as doc, TallyErrorForm } from '../../docs.js';
import { limitReadings } from '../../limits.js';
import type { SurfaceDeps } from '../../server.js';

/**
 * POST /v1/readings: many devices in one request, as a JSON array or as NDJSON. NDJSON is read
 * line by line and committed in chunks, so a large stream is never held whole in memory.
 */

const Precision = Type.Enum(['s', 'ms', 'us'], { description: 'Unit of numeric `ts` values; required when `ts` is a number' });
const Query = Type.Object({
  precision: Type.Optional(Precision),
  atomic: Type.Boolean({ default: false, description: 'Reject the whole request if any reading is invalid' }),
});
type Query = Static<typeof Query>;

/**
 * Items carry descriptions but no types: each reading is validated on its own so that a bad one is
 * reported by index instead of failing the whole request. The second branch lets any item through
 * schema validation (a non-object is then rejected by index, like any other bad reading).
 */
const ReadingItem = {
  anyOf: [
    {
      type: 'object',
      properties: {
        device_id: { description: 'string, 1-256 characters', examples: ['meter-17'] },
        ts: { description: 'RFC 3339 with a zone, or a number with ?precision', examples: ['2025-06-18T10:00:00Z'] },
        count: { description: 'optional integer >= 0', examples: [3] },
        payload: { description: 'optional JSON object (64 KiB, depth 32)', examples: [{ heartRateValue: 88 }] },
      },
    },
    { description: 'anything else is reported in `rejected` by its index' },
  ],
};

const Body = {
  content: {
    'application/json': { schema: { type: 'array', items: ReadingItem } },
    'application/x-ndjson': { schema: { description: 'One reading object per line, streamed' } },
  },
};

const Outcome_ = Type.Object({
  accepted: Type.Integer({ description: 'readings stored' }),
  duplicates: Type.Integer({ description: 'readings already stored (first write wins); nothing changed' }),
  rejected: Type.Array(
    Type.Object({
      index: Type.Integer(),
      field: Type.String(),
      message: Type.String(),
      status: Type.Integer({ description: '400: the reading is invalid; 403: the key may not write its device' }),
    }),
  ),
  rejected_total: Type.Optional(Type.Integer({ description: 'present when more were rejected than listed (1,000)' })),
});
const rejectedExample = { index: 1, field: 'ts', message: 'ts is a number: pass ?precision=s, ms or us to say its unit', status: 400 };

/** Most rejections listed in one response; `rejected_total` still counts them all. */
const MAX_LISTED_REJECTIONS = 1000;
/** Readings per commit while streaming NDJSON. */
const STREAM_CHUNK = 5000;
/** Longest NDJSON line: a 64 KiB payload plus generous room for the rest. */
const MAX_LINE_CHARS = 256 * 1024;

const REFUSE_NUMERIC_TS = 'ts is a number: pass ?precision=s, ms or us to say its unit';
const ITEM_FORM = '{device_id, ts, count?, payload?}';

/** A /v1 reading; numeric timestamps are read in the request's `precision`. */
function shapeFor(precision: Query['precision']): ReadingShape {
  return {
    deviceId: { property: 'device_id' },
    ts: 'ts',
    epoch: precision === undefined ? { refuse: REFUSE_NUMERIC_TS } : { unit: precision },
    count: { property: 'count', rule: 'optional' },
    payload: { property: 'payload', required: false },
    itemForm: ITEM_FORM,
  };
}

/** Collects the outcome of one request across however many commits it takes. */
class Outcome {
  accepted = 0;
  duplicates = 0;
  total = 0;
  rejectedTotal = 0;
  /** Rejections by status: 400 invalid, 403 another key's device, 429 the device over its rate. */
  readonly byStatus = new Map<number, number>();
  /** The longest Retry-After of the readings refused for their device's rate. */
  retryAfterSeconds = 0;
  readonly rejected: Array<{ index: number; field: string; message: string; status: number }> = [];

  reject(index: number, error: RejectionError): void {
    this.rejectedTotal++;
    const status = rejectionStatus(error);
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    if (error instanceof DeviceRateLimitedError) this.retryAfterSeconds = Math.max(this.retryAfterSeconds, error.retryAfterSeconds);
    if (this.rejected.length < MAX_LISTED_REJECTIONS) this.rejected.push({ index, field: error.field, message: error.message, status });
  }

  /** Adds a write's outcome; `indexOf` maps the write's item index to the request's. */
  add(outcome: IngestOutcome, indexOf: (k: number) => number = (k) => k): void {
    this.accepted += outcome.stored;
    this.duplicates += outcome.duplicates;
    for (const { index, error } of outcome.rejections) this.reject(indexOf(index), error);
  }

  send(reply: FastifyReply, atomic: boolean): FastifyReply {
    // An atomic request with any rejection stored nothing: that is a 400, not a partial 207.
    // Every reading refused for the same reason that is not the reading's own fault: that reason's
    // status (403 the key's devices, 429 the device's rate), so a client knows what to change or when to retry.
    const only = this.byStatus.size === 1 && this.rejectedTotal === this.total ? [...this.byStatus.keys()][0]! : 400;
    const status = this.rejectedTotal === 0 ? 200 : only !== 400 ? only : atomic || this.rejectedTotal === this.total ? 400 : 207;
    if (status === 429) reply.header('retry-after', String(this.retryAfterSeconds));
    const body: Record<string, unknown> = { accepted: this.accepted, duplicates: this.duplicates, rejected: this.rejected };
    if (this.rejectedTotal > this.rejected.length) body.rejected_total = this.rejectedTotal;
    return reply.code(status).send(body);
  }
}

/** What every write of a request says: its surface, and its key's devices. */
type RequestWrite = Pick<WriteOptions, 'surface' | 'devicePrefix'>;

async function ingestArray(items: unknown[], query: Query, deps: SurfaceDeps, reply: FastifyReply, base: RequestWrite) {
  const outcome = new Outcome();
  outcome.total = items.length;
  outcome.add(await deps.ingest.write(items, shapeFor(query.precision), { ...base, atomic: query.atomic }));
  return outcome.send(reply, query.atomic);
}

function lineTooLong(): HttpError {
  return new HttpError(413, 'PayloadTooLarge', `an NDJSON line is longer than ${MAX_LINE_CHARS} characters`);
}

/** Splits a byte stream into lines without holding more than one line and one chunk. */
async function* lines(stream: Readable): AsyncGenerator<string> {
  let rest = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream as AsyncIterable<string>) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    if (rest.length > MAX_LINE_CHARS) throw lineTooLong();
    for (const part of parts) {
      if (part.length > MAX_LINE_CHARS) throw lineTooLong();
      yield part;
    }
  }
  if (rest !== '') yield rest;
}

/**
 * Streams NDJSON into the pipeline in chunks of STREAM_CHUNK items, one chunk committing while the
 * next is parsed (never more, which is what bounds memory). An atomic request is checked whole
 * first (it is bounded by maxReadings) and written only if nothing was rejected.
 */
async function ingestNdjson(stream: Readable, query: Query, deps: SurfaceDeps, reply: FastifyReply, base: RequestWrite) {
  const outcome = new Outcome();
  const shape = shapeFor(query.precision);
  let items: unknown[] = [];
  let lineOf: number[] = [];
  // The commit in flight never rejects (its error is kept), so no rejection goes unhandled while
  // the next chunk is parsed.
  let committing: Promise<void> | undefined;
  let commitError: unknown;
  const commit = async (chunk: unknown[], lines: number[]) => {
    await committing;
    if (commitError !== undefined) throw commitError;
    committing = deps.ingest.write(chunk, shape, base).then(
      (result) => outcome.add(result, (k) => lines[k]!),
      (error: unknown) => {
        commitError = error;
      },
    );
  };
  let index = 0;
  let unparsed = 0;
  try {
    for await (const raw of lines(stream)) {
      const line = raw.trim();
      const i = index++;
      if (line === '') continue;
      outcome.total++;
      let item: unknown;
      try {
        item = JSON.parse(line);
      } catch {
        outcome.reject(i, new ValidationError('reading', `line ${i} is not valid JSON`));
        unparsed++;
        continue;
      }
      items.push(item);
      lineOf.push(i);
      if (query.atomic) {
        if (items.length > deps.maxReadings) throw new TooManyReadingsError('body', items.length, deps.maxReadings);
      } else if (items.length >= STREAM_CHUNK) {
        await commit(items, lineOf);
        items = [];
        lineOf = [];
      }
    }
  } finally {
    deps.ingest.refused('v1', unparsed);
    // A commit already sent settles before the request is answered, whatever went wrong since.
    await committing;
  }
  if (outcome.total === 0) throw new ValidationError('body', 'body holds no readings');
  if (query.atomic) {
    const lines = lineOf;
    const result = await deps.ingest.write(items, shape, { ...base, atomic: true, checkOnly: outcome.rejectedTotal > 0 });
    outcome.add(result, (k) => lines[k]!);
  } else {
    await commit(items, lineOf);
    await committing;
    if (commitError !== undefined) throw commitError;
  }
  return outcome.send(reply, query.atomic);
}

export const v1ReadingsRoute: FastifyPluginCallback<SurfaceDeps> = (app, deps, done) => {
  // Hand the raw stream to the handler; Fastify's body limit applies to JSON bodies only.
  app.addContentTypeParser('application/x-ndjson', (_request, payload, parsed) => parsed(null, payload));

  app.post<{ Querystring: Query; Body: unknown }>(
    '/v1/readings',
    {
      config: { access: 'ingest' },
      schema: {
        tags: ['v1'],
        summary: 'Store readings of many devices (JSON array or NDJSON)',
        description:
          'Answers 200 when nothing was rejected, 207 when some readings were (the valid ones are stored), and 400 with the same ' +
          'body when every reading was (or atomic=true and any was). A request-level error is {"error":{"code","message","field"}}.',
        querystring: Query,
        body: Body,
        response: {
          200: doc('Nothing rejected', Outcome_, { accepted: 2, duplicates: 0, rejected: [] }),
          207: doc('Some readings rejected; the valid ones are stored', Outcome_, { accepted: 1, duplicates: 0, rejected: [rejectedExample] }),
          ...errorReplies(TallyErrorForm, [413, 415, 503]),
          400: doc(
            'Every reading rejected (or atomic=true and any was): the outcome body, nothing stored; or a request-level error {"error":{...}}',
            Type.Union([Outcome_, TallyErrorForm.schema]),
            { accepted: 0, duplicates: 0, rejected: [rejectedExample] },
          ),
          403: doc(
            "Every reading was of a device the key may not write (per reading status 403); or the key lacks the ingest scope {\"error\":{...}}",
            Type.Union([Outcome_, TallyErrorForm.schema]),
            { accepted: 0, duplicates: 0, rejected: [{ index: 0, field: 'device_id', message: 'device_id "6b-meter" is not a device this key may write', status: 403 }] },
          ),
          429: doc(
            'Every reading was of a device over its rate (per reading status 429; Retry-After); or the address or key is over its rate {"error":{...}}',
            Type.Union([Outcome_, TallyErrorForm.schema]),
            { accepted: 0, duplicates: 0, rejected: [{ index: 0, field: 'device_id', message: 'device "meter-1" is over its rate of readings; retry after 1 s', status: 429 }] },
          ),
        },
      },
      preValidation: limitReadings(deps.maxReadings, 'body', (body) => body),
    },
    async (request, reply) => {
      const body = request.body;
      const base: RequestWrite = { surface: 'v1', devicePrefix: writablePrefix(request) };
      if (Array.isArray(body)) {
        if (body.length === 0) throw new ValidationError('body', 'body holds no readings');
        return ingestArray(body, request.query, deps, reply, base);
      }
      if (request.headers['content-type']?.startsWith('application/x-ndjson')) {
        return ingestNdjson(body as Readable, request.query, deps, reply, base);
      }
      throw new ValidationError('body', 'body must be a JSON array of readings {device_id, ts, count?, payload?}, or NDJSON');
    },
  );
  done();
};
