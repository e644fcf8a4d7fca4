import type { FastifyError, FastifyReply } from 'fastify';
import { DeviceRateLimitedError, ForbiddenDeviceError, InvalidCursorError, TallyError, TooManyReadingsError, ValidationError, type ErrorCode } from '../domain/errors.js';

export type HttpErrorCode = ErrorCode | 'PayloadTooLarge' | 'UnsupportedMediaType' | 'Unauthorized' | 'Internal';

/** An error that only exists at the HTTP boundary (authentication, for instance). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: HttpErrorCode,
    message: string,
    /** Sent as Retry-After (429, 503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Everything a surface needs to render an error in its own documented shape. */
export interface Problem {
  readonly status: number;
  readonly code: HttpErrorCode;
  readonly message: string;
  readonly field?: string;
  /** Individual validation issues, when the request failed schema validation. */
  readonly issues?: readonly Issue[];
  readonly retryAfterSeconds?: number;
}

export interface Issue {
  readonly path: readonly (string | number)[];
  readonly field: string;
  readonly message: string;
}

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  InvalidInput: 400,
  Forbidden: 403,
  TooManyRequests: 429,
  NotFound: 404,
  TooManyReadings: 413,
  QueueFull: 503,
  StorageUnavailable: 503,
  ShuttingDown: 503,
};

interface AjvIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
  /** Present with Ajv's `verbose` option: a pattern's description reads better than the regex. */
  parentSchema?: { description?: string };
}

/** `readings[0].count` from a JSON pointer plus, where Ajv names one, the offending property. */
function issueFrom(error: AjvIssue): Issue {
  const path: (string | number)[] = error.instancePath
    .split('/')
    .slice(1)
    .map((part) => {
      const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
      return /^\d+$/.test(key) ? Number(key) : key;
    });
  const named = error.params.missingProperty ?? error.params.additionalProperty;
  if (typeof named === 'string') path.push(named);
  const field = path.reduce<string>(
    (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc === '' ? part : `${acc}.${part}`),
    '',
  );
  const allowed = error.params.allowedValues;
  const description = error.parentSchema?.description;
  const detail = Array.isArray(allowed)
    ? `must be one of: ${allowed.join(', ')}`
    : error.keyword === 'pattern' && description !== undefined
      ? `must be ${description}`
      : (error.message ?? 'is invalid');
  const subject = field === '' ? 'body' : field;
  const message =
    error.keyword === 'required' ? `${subject} is required` : error.keyword === 'additionalProperties' ? `${subject} is not allowed` : `${subject} ${detail}`;
  return { path, field: subject, message };
}

/**
 * Errors of a client that went away mid-request: Node's "aborted" (ECONNRESET) on the request
 * stream, or a stream pipeline's premature close. The client caused them (and will not see the
 * answer): they are not the server's errors to log as unexpected.
 */
const CLIENT_GONE = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);

/** Classifies anything thrown while serving a request. Unknown errors become a 500 the caller logs. */
function describeError(error: unknown): Problem {
  const errorCode = (error as { code?: unknown } | null)?.code;
  if (typeof errorCode === 'string' && CLIENT_GONE.has(errorCode)) {
    return { status: 400, code: 'InvalidInput', message: 'the request ended before its body was complete', field: 'body' };
  }
  if (error instanceof HttpError) return { status: error.status, code: error.code, message: error.message, retryAfterSeconds: error.retryAfterSeconds };
  if (error instanceof TallyError) {
    // Every listing of every surface takes its cursor as the query parameter `cursor`.
    const field =
      error instanceof ValidationError || error instanceof TooManyReadingsError || error instanceof ForbiddenDeviceError || error instanceof DeviceRateLimitedError ? error.field : error instanceof InvalidCursorError ? 'cursor' : undefined;
    const retryAfterSeconds = 'retryAfterSeconds' in error ? (error.retryAfterSeconds as number) : undefined;
    return { status: STATUS_BY_CODE[error.code], code: error.code, message: error.message, field, retryAfterSeconds };
  }
  const fastifyError = error as Partial<FastifyError> & { validation?: AjvIssue[] };
  if (Array.isArray(fastifyError.validation) && fastifyError.validation.length > 0) {
    const issues = fastifyError.validation.map(issueFrom);
    const first = issues[0]!;
    return { status: 400, code: 'InvalidInput', message: first.message, field: first.field, issues };
  }
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Fastify's own client errors (bad JSON, content type, body size) carry safe messages.
    const code: HttpErrorCode = status === 413 ? 'PayloadTooLarge' : status === 415 ? 'UnsupportedMediaType' : 'InvalidInput';
    const message =
      status === 400 && fastifyError.code === 'FST_ERR_CTP_INVALID_JSON_BODY'
        ? 'body is not valid JSON (or holds a forbidden __proto__ or constructor.prototype key)'
        : (fastifyError.message ?? 'bad request');
    return { status, code, message, field: status === 415 ? 'content-type' : 'body' };
  }
  return { status: 500, code: 'Internal', message: 'internal error' };
}

/**
 * Sends a problem with the surface-specific body, adding Retry-After for transient failures and
 * logging what the client could not have caused.
 */
export function sendProblem(reply: FastifyReply, error: unknown, render: (problem: Problem) => unknown): FastifyReply {
  const problem = describeError(error);
  if (problem.status >= 500) {
    if (problem.code === 'Internal') reply.log.error({ err: error }, 'unexpected error');
    // The store's failure with its cause (pino's err serializer appends causes); a full queue is
    // backpressure, counted in the metrics, with nothing more to say.
    else if (problem.code === 'StorageUnavailable') reply.log.warn({ code: problem.code, err: error }, problem.message);
    else reply.log.warn({ code: problem.code }, problem.message);
  }
  if (problem.retryAfterSeconds !== undefined) reply.header('retry-after', String(problem.retryAfterSeconds));
  return reply.code(problem.status).send(render(problem));
}

/** Tally's own error body (also the Device readings surface's `{"error":{"message"}}`, extended). */
export function tallyErrorBody(problem: Problem): unknown {
  return { error: { code: problem.code, message: problem.message, ...(problem.field ? { field: problem.field } : {}) } };
}
