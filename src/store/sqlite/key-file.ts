import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ApiKeyRecord } from '../../domain/api-key.js';
import type { KeyStore, KeyWrite } from '../types.js';
import type { SqliteStoreConfig } from './config.js';
import { BUSY_TIMEOUT_MS, openWriterDatabase } from './open.js';
import { SCHEMA_VERSION } from './schema.js';
import { SqliteKeyTable } from './keys.js';

/**
 * The keys of a data file for a command (`tally keys`), usable while a server runs on the file:
 * keys live in their own table, so this connection never touches what the server's writer holds
 * in memory, and SQLite's write lock serialises the two for the moment a key changes.
 */
export class SqliteKeyFile implements KeyStore {
  private readonly table: SqliteKeyTable;

  private constructor(private readonly db: Database.Database) {
    this.table = new SqliteKeyTable(db);
  }

  static open(config: SqliteStoreConfig): SqliteKeyFile {
    mkdirSync(dirname(config.file), { recursive: true });
    if (!existsSync(config.file) || schemaVersion(config.file) < SCHEMA_VERSION) {
      // No server can be running on an old schema of this Tally: it would have migrated at start.
      // Migrating takes the writer lock, so a server of an older Tally on the file refuses it.
      const writer = openWriterDatabase(config);
      writer.db.close();
      writer.lock.close();
    }
    const db = new Database(config.file);
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma(`synchronous = ${config.synchronous}`);
    return new SqliteKeyFile(db);
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return this.table.list();
  }

  async writeKeys(change: KeyWrite): Promise<boolean> {
    return this.table.write(change);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

function schemaVersion(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}
