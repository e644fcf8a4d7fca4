import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify';
import { HttpError } from './errors.js';

/** Who may call a route. Routes without an `access` entry in their config are open. */
export type Access = 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a caller needs; checked once, by the hook `enforceAccess` installs. */
    access?: Access;
  }
}

export interface AccessOptions {
  /** Bearer token for admin routes; without one they are disabled (403). */
  readonly adminToken?: string;
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Installs the one check of who may call what: every route declaring `config.access` gets an
 * onRequest hook that runs before the body is read or any handler runs (open routes get none, so
 * they pay nothing). Errors reach the route's own error handler, so each surface renders 401/403 in
 * its documented shape. Call before any route is registered.
 */
export function enforceAccess(app: FastifyInstance, options: AccessOptions): void {
  const check = (request: FastifyRequest): void => {
    const token = options.adminToken;
    if (token === undefined) throw new HttpError(403, 'Forbidden', 'admin endpoints are disabled: set TALLY_ADMIN_TOKEN to enable them');
    const header = request.headers.authorization;
    if (header === undefined || !header.startsWith('Bearer ') || !sameSecret(header.slice('Bearer '.length), token)) {
      throw new HttpError(401, 'Unauthorized', 'this endpoint needs the header Authorization: Bearer <TALLY_ADMIN_TOKEN>');
    }
  };
  const hook: onRequestHookHandler = (request, _reply, done) => {
    try {
      check(request);
      done();
    } catch (error) {
      done(error as Error);
    }
  };
  app.addHook('onRoute', (route) => {
    if (route.config?.access === undefined) return;
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [hook, ...existing];
  });
}
