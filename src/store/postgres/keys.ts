import type { KeyWrite } from '../types.js';

/** The api_keys table's statements: each change is one statement, so one round trip. */

export const LIST_KEYS = 'SELECT * FROM api_keys ORDER BY created_us, id';

/** The statement and values of one change; its row count says whether it changed anything. */
export function keyWriteQuery(change: KeyWrite): { text: string; values: unknown[] } {
  switch (change.kind) {
    case 'create': {
      const r = change.record;
      return {
        text: `INSERT INTO api_keys (id, name, scopes, device_prefix, hash, created_us) VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT DO NOTHING`,
        values: [r.id, r.name, r.scopes.join(','), r.devicePrefix, r.hash, r.createdUs],
      };
    }
    case 'revoke':
      return { text: 'UPDATE api_keys SET revoked_us = $1 WHERE name = $2 AND revoked_us IS NULL', values: [change.nowUs, change.name] };
    case 'touch':
      // Every key of the flush in one statement; a later time never goes back.
      return {
        text: `UPDATE api_keys AS k SET last_used_us = u.us
               FROM unnest($1::text[], $2::bigint[]) AS u(id, us)
               WHERE k.id = u.id AND (k.last_used_us IS NULL OR k.last_used_us < u.us)`,
        values: [change.used.map(([id]) => id), change.used.map(([, us]) => us)],
      };
  }
}
