import { Type, type TSchema } from 'typebox';

/**
 * Response schemas: they document each answer in /openapi.json (with an example) and let Fastify
 * serialise it with a compiled serializer. Open objects (payloads) keep every property.
 */
export function reply(description: string, schema: TSchema, example: unknown): TSchema {
  return { ...schema, description, examples: [example] } as TSchema;
}

/** Any JSON object, kept whole. */
export const OpenObject = Type.Object({}, { additionalProperties: true });

/** A JSON object or null (a payload that may be absent). */
export const Payload = Type.Unsafe<Record<string, unknown> | null>({
  type: ['object', 'null'],
  additionalProperties: true,
  description: 'the JSON object sent, or null',
});

/** A value echoed back as the client sent it, of whatever type. */
export const AsSent = Type.Unsafe<unknown>({ description: 'as sent' });

/** What each error status means, wherever a route can answer it. */
const ERROR_MEANINGS: Record<number, string> = {
  400: 'Invalid input: the body or a parameter breaks a rule; the message names the field',
  401: 'No valid API key, where one is needed (see README, Security); with a WWW-Authenticate header',
  403: "The key lacks the route's scope, or is bound to devices other than the one asked for",
  429: 'Over a rate limit (per address, key or device; see README, Security); retry after Retry-After seconds',
  404: 'No such device (or route)',
  413: 'The body, or the number of readings in it, is over the limit',
  415: 'The Content-Type is not one this route accepts',
  503: 'The write queue is full, the store is unavailable or the service is shutting down; retry after Retry-After seconds',
};

/** How a surface renders an error: its body's schema and an example for a status and message. */
export interface ErrorForm {
  readonly schema: TSchema;
  readonly example: (status: number, code: string, message: string) => unknown;
}

const EXAMPLES: Record<number, [string, string]> = {
  400: ['InvalidInput', 'readings[0].timestamp must be an RFC 3339 timestamp with a zone'],
  401: ['Unauthorized', 'the key is not valid'],
  403: ['Forbidden', 'the key "gateway-7" lacks the read scope this endpoint needs'],
  429: ['TooManyRequests', 'the key "gateway-7" is over its rate; retry after 1 s'],
  404: ['NotFound', 'device "meter-9" not found'],
  413: ['PayloadTooLarge', 'Request body is too large'],
  415: ['UnsupportedMediaType', 'Unsupported Media Type: text/plain'],
  503: ['QueueFull', 'the write queue is full (100000 readings waiting); retry shortly'],
};

/** What any route that needs a key can answer, whatever else it does (and 429, with a rate limit set). */
const ACCESS_ERRORS = [401, 403, 429] as const;

/**
 * Response entries documenting the error statuses a route can answer, in its surface's form, and
 * the access errors every route but the open ones (ping, probes, the root) can answer.
 */
export function errorReplies(form: ErrorForm, statuses: readonly number[]): Record<number, TSchema> {
  return Object.fromEntries(
    [...new Set([...statuses, ...ACCESS_ERRORS])].sort().map((status) => {
      const [code, message] = EXAMPLES[status]!;
      return [status, reply(ERROR_MEANINGS[status]!, form.schema, form.example(status, code, message))];
    }),
  );
}

/** Tally's own error body, `{"error": {"code", "message", "field"?}}` (also the Device readings and Records surfaces'). */
export const TallyErrorForm: ErrorForm = {
  schema: Type.Object(
    {
      error: Type.Object(
        { code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) },
        { additionalProperties: true },
      ),
    },
    { additionalProperties: true },
  ),
  example: (status, code, message) => ({ error: { code, message, ...(status === 400 ? { field: 'readings[0].timestamp' } : {}) } }),
};

/** Statuses every write route can answer: bad input, too large, wrong type, queue full. */
export const WRITE_ERRORS = [400, 413, 415, 503] as const;
