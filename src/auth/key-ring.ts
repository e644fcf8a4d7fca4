import { timingSafeEqual } from 'node:crypto';
import { keyId, keyMatches, type ApiKeyRecord, type Scope } from '../domain/api-key.js';
import type { KeyStore } from '../store/types.js';

/** Who a request acts as, once its key is known. */
export interface Principal {
  /** The key's name: what logs say, never the key. */
  readonly name: string;
  readonly scopes: readonly Scope[];
  /** Only devices whose id starts with this; null for every device. */
  readonly devicePrefix: string | null;
  /** The key's public id (absent for TALLY_ADMIN_TOKEN). */
  readonly id?: string;
}

export type Authentication =
  | { readonly ok: true; readonly principal: Principal }
  /** `name` is the key's when the id was known (a revoked key, a wrong secret), for the log. */
  | { readonly ok: false; readonly reason: 'malformed' | 'unknown' | 'revoked'; readonly name?: string };

export interface KeyRingOptions {
  /** How often the keys are read again: a key created or revoked on any node counts within this. */
  readonly refreshMs?: number;
  /** How often last-used times are written back. */
  readonly flushMs?: number;
  /** TALLY_ADMIN_TOKEN, kept working as an admin credential named after the variable. */
  readonly adminToken?: string;
  /** Told when a refresh or flush fails; the ring keeps the keys it had. */
  readonly onError?: (err: unknown, doing: string) => void;
}

const ADMIN_TOKEN_PRINCIPAL: Principal = { name: 'TALLY_ADMIN_TOKEN', scopes: ['admin'], devicePrefix: null };

/**
 * The keys in memory, read again from the store every `refreshMs` (off the request path): a
 * request's key check is a map lookup and one SHA-256, never a query. Last-used times are kept in
 * memory and written back every `flushMs`, one statement for all the keys used.
 */
export class KeyRing {
  /** Each key by its public id, with its hash decoded once rather than per request. */
  private byId = new Map<string, { readonly record: ApiKeyRecord; readonly digest: Buffer }>();
  private usedAt = new Map<string, number>();
  private readonly adminToken: Buffer | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  /**
   * Bumped by every load: what was checked before it (a connection's key, see `remembered`) is
   * checked again, so a revocation counts within one refresh.
   */
  generation = 0;

  constructor(
    private readonly store: KeyStore,
    private readonly options: KeyRingOptions = {},
  ) {
    this.adminToken = options.adminToken === undefined ? undefined : Buffer.from(options.adminToken);
  }

  /** Reads the keys now; rejects when the store cannot list them. */
  async load(): Promise<void> {
    const keys = await this.store.listKeys();
    this.byId = new Map(keys.map((record) => [record.id, { record, digest: Buffer.from(record.hash, 'hex') }]));
    this.generation++;
  }

  /** Starts refreshing and flushing in the background. */
  start(): void {
    const { refreshMs = 500, flushMs = 10_000 } = this.options;
    this.refreshTimer = setInterval(() => {
      this.refreshing ??= this.load()
        .catch((err) => this.options.onError?.(err, 'reading the API keys'))
        .finally(() => (this.refreshing = undefined));
    }, refreshMs).unref();
    this.flushTimer = setInterval(() => void this.flush(), flushMs).unref();
  }

  /**
   * Whether any key was ever created, revoked ones included (as of the last refresh): revoking
   * the last key must not open a server that `auto` had closed.
   */
  get anyKeys(): boolean {
    return this.byId.size > 0;
  }

  authenticate(presented: string, nowUs: number): Authentication {
    const id = keyId(presented);
    if (id === undefined) {
      if (this.adminToken !== undefined && sameBytes(Buffer.from(presented), this.adminToken)) return { ok: true, principal: ADMIN_TOKEN_PRINCIPAL };
      return { ok: false, reason: 'malformed' };
    }
    const entry = this.byId.get(id);
    if (entry === undefined) return { ok: false, reason: 'unknown' };
    const record = entry.record;
    if (!keyMatches(entry.digest, presented)) return { ok: false, reason: 'unknown', name: record.name };
    if (record.revokedUs !== null) return { ok: false, reason: 'revoked', name: record.name };
    this.usedAt.set(record.id, nowUs);
    return { ok: true, principal: record };
  }

  /** Notes a use of a key checked earlier (a connection's remembered key), for its last-used time. */
  used(principal: Principal, nowUs: number): void {
    if (principal.id !== undefined) this.usedAt.set(principal.id, nowUs);
  }

  /** Writes the last-used times gathered since the previous flush. */
  async flush(): Promise<void> {
    if (this.usedAt.size === 0) return;
    const used = [...this.usedAt];
    this.usedAt = new Map();
    try {
      await this.store.writeKeys({ kind: 'touch', used });
    } catch (err) {
      this.options.onError?.(err, 'recording when keys were last used');
    }
  }

  /** Stops the timers and writes the last-used times one last time (before the store closes). */
  async close(): Promise<void> {
    clearInterval(this.refreshTimer);
    clearInterval(this.flushTimer);
    await this.refreshing;
    await this.flush();
  }
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
