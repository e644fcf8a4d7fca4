import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * What a key lets its holder do. `admin` includes the other two (an operator's key), so a scope
 * check asks "does the key hold this scope or admin".
 */
export const SCOPES = ['ingest', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** A key as the store keeps it: never the key itself, only its SHA-256. */
export interface ApiKeyRecord {
  /** Public part of the key, e.g. `k3f9c1a7b0e2d`: finds the record without comparing secrets. */
  readonly id: string;
  /** Unique among keys not revoked; what an operator revokes and what logs name. */
  readonly name: string;
  readonly scopes: readonly Scope[];
  /** A device-bound key writes and reads only devices whose id starts with this; null for all. */
  readonly devicePrefix: string | null;
  /** SHA-256 of the whole key, hex. */
  readonly hash: string;
  readonly createdUs: number;
  readonly lastUsedUs: number | null;
  readonly revokedUs: number | null;
}

/** A key as first created: its record, and the key itself, shown once and never stored. */
export interface IssuedKey {
  readonly record: ApiKeyRecord;
  readonly key: string;
}

/**
 * Keys look like `tally_<id>_<secret>`: the id (12 hex characters) is public and indexes the
 * record; the secret is 256 random bits in base64url. Random keys need no slow hash: SHA-256 of a
 * 256-bit secret cannot be reversed or guessed.
 */
const KEY_FORM = /^tally_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

/** SHA-256 of a key, hex: what the store keeps. (crypto.hash, one call: a third of createHash's cost.) */
export function hashKey(key: string): string {
  return hash('sha256', key, 'hex');
}

/** A new key and its record; the caller stores the record and shows the key once. */
export function issueKey(name: string, scopes: readonly Scope[], devicePrefix: string | null, nowUs: number): IssuedKey {
  const id = randomBytes(6).toString('hex');
  const key = `tally_${id}_${randomBytes(32).toString('base64url')}`;
  return { key, record: { id, name, scopes: [...scopes], devicePrefix, hash: hashKey(key), createdUs: nowUs, lastUsedUs: null, revokedUs: null } };
}

/** The id of a well-formed key, or undefined: malformed keys are refused without a lookup. */
export function keyId(presented: string): string | undefined {
  return KEY_FORM.exec(presented)?.[1];
}

/** Whether `presented` hashes to `expected` (a record's hash, decoded), compared in constant time. */
export function keyMatches(expected: Buffer, presented: string): boolean {
  const given = hash('sha256', presented, 'buffer') as unknown as Buffer;
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export function hasScope(scopes: readonly Scope[], needed: Scope): boolean {
  return scopes.includes(needed) || scopes.includes('admin');
}

/** Key names: what a shell and a log line show safely. */
export const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/;
