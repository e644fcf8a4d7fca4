import type { ApiKeyRecord, Scope } from '../domain/api-key.js';

/** A row of the api_keys table, as both backends name its columns. */
export interface KeyRow {
  id: string;
  name: string;
  scopes: string;
  device_prefix: string | null;
  hash: string;
  created_us: number;
  last_used_us: number | null;
  revoked_us: number | null;
}

export function toKeyRecord(row: KeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    scopes: row.scopes.split(',') as Scope[],
    devicePrefix: row.device_prefix,
    hash: row.hash,
    createdUs: row.created_us,
    lastUsedUs: row.last_used_us,
    revokedUs: row.revoked_us,
  };
}
