import type Database from 'better-sqlite3';
import type { ApiKeyRecord } from '../../domain/api-key.js';
import { toKeyRecord, type KeyRow } from '../key-row.js';
import type { KeyWrite } from '../types.js';

/**
 * The api_keys table on one connection: the writer thread's for changes, a reader's for listings,
 * or the `tally keys` command's own (keys are small rows in their own table, so a command may write
 * them beside a running server: SQLite's lock serialises the two writers for a moment).
 */
export class SqliteKeyTable {
  private readonly insert: Database.Statement;
  private readonly revoke: Database.Statement;
  private readonly touch: Database.Statement;
  private readonly all: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO api_keys (id, name, scopes, device_prefix, hash, created_us) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    );
    this.revoke = db.prepare('UPDATE api_keys SET revoked_us = ? WHERE name = ? AND revoked_us IS NULL');
    this.touch = db.prepare('UPDATE api_keys SET last_used_us = ? WHERE id = ? AND (last_used_us IS NULL OR last_used_us < ?)');
    this.all = db.prepare('SELECT * FROM api_keys ORDER BY created_us, id');
  }

  list(): ApiKeyRecord[] {
    return (this.all.all() as KeyRow[]).map(toKeyRecord);
  }

  /** Applies one change; resolves whether it changed anything (a taken name or an unknown key does not). */
  write(change: KeyWrite): boolean {
    switch (change.kind) {
      case 'create': {
        const r = change.record;
        return this.insert.run(r.id, r.name, r.scopes.join(','), r.devicePrefix, r.hash, r.createdUs).changes === 1;
      }
      case 'revoke':
        return this.revoke.run(change.nowUs, change.name).changes > 0;
      case 'touch':
        return this.db.transaction(() => {
          let changed = 0;
          for (const [id, us] of change.used) changed += this.touch.run(us, id, us).changes;
          return changed > 0;
        })();
    }
  }
}
