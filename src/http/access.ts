import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Authentication, KeyRing, Principal } from '../auth/key-ring.js';
import { hasScope } from '../domain/api-key.js';
import type { RateLimiter } from '../domain/rate-limit.js';
import { setRateLimitHeaders } from './address-limit.js';
import { HttpError } from './errors.js';

/**
 * What a route needs: `open` (no key ever: ping, health, the root), or a key holding the scope.
 * Routes that declare nothing need `read` for GET and HEAD, `admin` for anything else: a route
 * someone forgets to declare is closed, not open.
 */
export type Access = 'open' | 'ingest' | 'read' | 'admin';

/** `on`: every route but the open ones needs a key. `off`: only admin routes do. `auto`: on once a key exists. */
export type AuthMode = 'on' | 'off' | 'auto';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a caller needs; checked once, by the hook `enforceAccess` installs. */
    access?: Access;
    /** The path parameter holding the one device the route touches: a device-bound key must cover it. */
    deviceParam?: string;
    /** Figures of the whole fleet (metrics): refused to device-bound keys. */
    fleet?: boolean;
  }
  interface FastifyRequest {
    /** The key the request came with, once checked; null when it came without one (auth off). */
    principal: Principal | null;
  }
}

export interface AccessOptions {
  readonly mode: AuthMode;
  readonly keys: KeyRing;
  /** Requests per key (TALLY_RATE_KEY), checked once the key is known; absent, no limit. */
  readonly keyRate?: RateLimiter;
  /** Told of each request refused by the per-key limit (the tally_rate_limited_total metric). */
  readonly onKeyLimited?: () => void;
}

/** The challenge of every 401, as RFC 6750 has it. */
export const WWW_AUTHENTICATE = 'Bearer realm="tally"';

/**
 * The key a request carries: `Authorization: Bearer <key>` (or `Token <key>`, as InfluxDB 2.x
 * clients send it, or Basic with the key as the password, as 1.x clients and Telegraf can), or
 * `X-API-Key: <key>`.
 */
export function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  const authorization = request.headers.authorization;
  if (authorization === undefined) return undefined;
  const space = authorization.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = authorization.slice(0, space).toLowerCase();
  const value = authorization.slice(space + 1).trim();
  if (scheme === 'bearer' || scheme === 'token') return value;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

function accessOf(request: FastifyRequest): Access {
  const declared = request.routeOptions.config.access;
  if (declared !== undefined) return declared;
  return request.method === 'GET' || request.method === 'HEAD' ? 'read' : 'admin';
}

const HOW_TO_GET_A_KEY = 'send Authorization: Bearer <key> or X-API-Key: <key>; an operator creates keys with `tally keys create`';

/**
 * Installs the one check of who may call what: an onRequest hook on every route, before the body
 * is read or any handler runs. Errors reach the route's own error handler, so each surface renders
 * 401/403 in its documented shape. Call before any route is registered.
 */
export function enforceAccess(app: FastifyInstance, options: AccessOptions): void {
  const { keys, mode, keyRate, onKeyLimited } = options;
  app.decorateRequest('principal', null);
  /**
   * The key each connection last presented and passed, as checked in which refresh of the ring: a
   * client sending the same key on a kept-alive connection skips the SHA-256 until the next refresh
   * (so a revocation still counts within one). Compared in constant time, like any key: a pooled
   * connection of a proxy may carry several clients.
   */
  const remembered = new WeakMap<object, { readonly presented: Buffer; readonly principal: Principal; readonly generation: number }>();
  const authenticate = (request: FastifyRequest, presented: string): Authentication => {
    const nowUs = Date.now() * 1000;
    const socket = request.raw.socket as object | null | undefined;
    const hit = socket == null ? undefined : remembered.get(socket);
    if (hit !== undefined && hit.generation === keys.generation) {
      const given = Buffer.from(presented);
      if (given.length === hit.presented.length && timingSafeEqual(given, hit.presented)) {
        keys.used(hit.principal, nowUs);
        return { ok: true, principal: hit.principal };
      }
    }
    const result = keys.authenticate(presented, nowUs);
    if (result.ok && socket != null) remembered.set(socket, { presented: Buffer.from(presented), principal: result.principal, generation: keys.generation });
    return result;
  };
  const check = (request: FastifyRequest, reply: FastifyReply): void => {
    const access = accessOf(request);
    if (access === 'open') return;
    // Admin routes delete data: they need an admin key whatever the mode.
    const enforced = access === 'admin' || mode === 'on' || (mode === 'auto' && keys.anyKeys);
    const presented = presentedKey(request);
    if (presented === undefined) {
      if (enforced) throw new HttpError(401, 'Unauthorized', `this endpoint needs a key with the ${access} scope: ${HOW_TO_GET_A_KEY}`);
      return;
    }
    const result = authenticate(request, presented);
    if (!result.ok) {
      // Where keys are not needed, a header that is not one of ours (an InfluxDB client's token) is ignored.
      if (!enforced) return;
      // Never the key: its name when the id was one of ours, and why it was refused.
      request.log.warn({ key: result.name, reason: result.reason }, 'authentication failed');
      throw new HttpError(401, 'Unauthorized', result.reason === 'revoked' ? 'the key was revoked' : 'the key is not valid');
    }
    const principal = result.principal;
    if (!hasScope(principal.scopes, access)) {
      throw new HttpError(403, 'Forbidden', `the key ${JSON.stringify(principal.name)} lacks the ${access} scope this endpoint needs`);
    }
    if (request.routeOptions.config.fleet === true && principal.devicePrefix !== null) {
      throw new HttpError(403, 'Forbidden', `the key ${JSON.stringify(principal.name)} is bound to devices; this endpoint covers the whole fleet`);
    }
    const param = request.routeOptions.config.deviceParam;
    if (param !== undefined && principal.devicePrefix !== null) {
      const deviceId = (request.params as Record<string, string | undefined>)[param];
      if (deviceId !== undefined && !deviceId.startsWith(principal.devicePrefix)) throw forbiddenDevice(principal);
    }
    request.principal = principal;
    if (keyRate !== undefined) {
      const decision = keyRate.take(principal.name);
      if (!decision.allowed) {
        onKeyLimited?.();
        setRateLimitHeaders(reply, decision);
        throw new HttpError(429, 'TooManyRequests', `the key ${JSON.stringify(principal.name)} is over its rate; retry after ${decision.retryAfterSeconds} s`, decision.retryAfterSeconds);
      }
    }
  };
  const hook: onRequestHookHandler = (request, reply, done) => {
    try {
      check(request, reply);
      done();
    } catch (error) {
      if ((error as HttpError).status === 401) reply.header('WWW-Authenticate', WWW_AUTHENTICATE);
      done(error as Error);
    }
  };
  app.addHook('onRoute', (route) => {
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [hook, ...existing];
  });
}

function forbiddenDevice(principal: Principal): HttpError {
  return new HttpError(403, 'Forbidden', `the key ${JSON.stringify(principal.name)} may only use devices whose id starts with ${JSON.stringify(principal.devicePrefix)}`);
}

/** The device prefix every reading a request writes must have: its key's, or none. */
export function writablePrefix(request: FastifyRequest): string | undefined {
  return request.principal?.devicePrefix ?? undefined;
}

/**
 * The prefix a listing is confined to: what the client asked for, narrowed to its key's devices.
 * `null` when the two cannot overlap (the listing is empty); `undefined` for every device.
 */
export function visiblePrefix(request: FastifyRequest, asked: string | undefined): string | undefined | null {
  const own = request.principal?.devicePrefix ?? null;
  if (own === null) return asked;
  if (asked === undefined || own.startsWith(asked)) return own;
  return asked.startsWith(own) ? asked : null;
}

/** Throws 403 unless the request's key covers `deviceId` (routes whose device is not a path parameter). */
export function checkDevice(request: FastifyRequest, deviceId: string): void {
  const principal = request.principal;
  if (principal !== null && principal.devicePrefix !== null && !deviceId.startsWith(principal.devicePrefix)) throw forbiddenDevice(principal);
}
