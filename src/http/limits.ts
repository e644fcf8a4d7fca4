import type { preValidationHookHandler } from 'fastify';
import { TooManyReadingsError } from '../domain/errors.js';

/**
 * A preValidation hook that refuses a request carrying more than `max` readings before any schema
 * or per-reading work is spent on it. `pick` finds the readings array in the parsed body.
 */
export function limitReadings(max: number, field: string, pick: (body: unknown) => unknown): preValidationHookHandler {
  return (request, _reply, done) => {
    const readings = pick(request.body);
    if (Array.isArray(readings) && readings.length > max) {
      done(new TooManyReadingsError(field, readings.length, max));
      return;
    }
    done();
  };
}

/** `body.readings` of an object body, if any. */
export function readingsOf(body: unknown): unknown {
  return typeof body === 'object' && body !== null ? (body as { readings?: unknown }).readings : undefined;
}
