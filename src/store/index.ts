import { ConfigError } from '../domain/errors.js';
import { postgresConfig, type PostgresStoreConfig } from './postgres/config.js';
import { sqliteConfig, type SqliteStoreConfig } from './sqlite/config.js';
import type { KeyStore, TelemetryStore } from './types.js';

/** Which backend, and its own settings. */
export type StoreConfig =
  | { readonly backend: 'sqlite'; readonly sqlite: SqliteStoreConfig }
  | { readonly backend: 'postgres'; readonly postgres: PostgresStoreConfig };

/** Settings that apply to one backend only, as the app read them; each backend takes its own. */
export interface BackendSettings {
  readonly sqlite?: Partial<Omit<SqliteStoreConfig, 'file'>>;
}

/**
 * Reads a store location such as `sqlite:./data/tally.db` (also `sqlite://./rel.db`,
 * `sqlite:///abs.db`) or `postgres://user@host:5432/tally` (also `postgresql://`). `name` is the
 * variable or flag it came from, for the error that refuses it.
 */
export function storeConfig(location: string, settings: BackendSettings = {}, name = 'TALLY_STORE'): StoreConfig {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(location)?.[1]?.toLowerCase();
  const named = (build: () => StoreConfig): StoreConfig => {
    try {
      return Object.freeze(build());
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${name}: ${err.message}`);
      throw err;
    }
  };
  if (scheme === 'sqlite') {
    let file = location.slice('sqlite:'.length);
    if (file.startsWith('//')) file = file.slice(2);
    return named(() => ({ backend: 'sqlite', sqlite: sqliteConfig({ ...settings.sqlite, file }) }));
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    return named(() => ({ backend: 'postgres', postgres: postgresConfig(location) }));
  }
  throw new ConfigError(
    `${name} must name a store as sqlite:<path> (e.g. sqlite:./data/tally.db) or postgres://user@host:port/db, got ${JSON.stringify(location)}` +
      (scheme === undefined ? '' : `: unknown scheme ${JSON.stringify(scheme)}`),
  );
}

/** Opens the configured backend (creating and migrating its storage when needed). */
export async function openStore(config: StoreConfig): Promise<TelemetryStore> {
  switch (config.backend) {
    case 'sqlite': {
      // Loaded on use, like every backend: a node that runs one never loads another's driver.
      const { SqliteStore } = await import('./sqlite/store.js');
      return SqliteStore.open(config.sqlite);
    }
    case 'postgres': {
      const { PostgresStore } = await import('./postgres/store.js');
      return PostgresStore.open(config.postgres);
    }
  }
}

/**
 * The keys of the configured store, for commands that run beside a server (`tally keys`): on
 * SQLite without taking the file's writer lock; on PostgreSQL a pool like any node's.
 */
export async function openKeyStore(config: StoreConfig): Promise<KeyStore & { close(): Promise<void> }> {
  switch (config.backend) {
    case 'sqlite': {
      const { SqliteKeyFile } = await import('./sqlite/key-file.js');
      return SqliteKeyFile.open(config.sqlite);
    }
    case 'postgres': {
      const { PostgresStore } = await import('./postgres/store.js');
      return PostgresStore.open(config.postgres);
    }
  }
}
