import { resolve } from 'node:path';
import { ConfigError, loadConfig } from '../config.js';
import type { StoreConfig } from '../../store/index.js';
import { commandArgs, oneFile, reportingErrors } from './args.js';

/** What to say instead of a half-working backup of a PostgreSQL store. */
export function postgresBackupAdvice(store: Extract<StoreConfig, { backend: 'postgres' }>, command: 'backup' | 'restore'): string {
  const url = store.postgres.display;
  return command === 'backup'
    ? `tally backup copies SQLite stores; this store is PostgreSQL (${url}): use its own tools, e.g.\n` +
        `  pg_dump --format=custom --file=tally.dump '${url}'\n` +
        'or a streaming replica for a continuous copy (README: Backups and restore)\n'
    : `tally restore puts back SQLite backups; this store is PostgreSQL (${url}): restore a pg_dump with pg_restore, e.g.\n` +
        `  pg_restore --clean --if-exists --dbname='${url}' tally.dump\n`;
}

/** `tally backup <file> [--force]`: a consistent, checked copy of the SQLite store, taken while it serves. */
export async function backupCommand(argv: string[]): Promise<void> {
  const { on, positionals, rest } = commandArgs(argv, ['force']);
  const file = resolve(oneFile(positionals, 'tally backup <file> [--force] [setting flags]'));
  const config = loadConfig(process.env, rest);
  if (config.store.backend === 'postgres') {
    process.stderr.write(postgresBackupAdvice(config.store, 'backup'));
    process.exitCode = 2;
    return;
  }
  const { backupDatabase } = await import('../../store/sqlite/backup.js');
  if (resolve(config.store.sqlite.file) === file) throw new ConfigError('the backup file must not be the store itself');
  const source = config.store.sqlite.file;
  await reportingErrors('backup', () => {
    const result = backupDatabase(source, file, { overwrite: on.has('force') });
    process.stdout.write(`tally backup: ${result.file} written and checked (quick_check ok), ${result.bytes} bytes in ${(result.durationMs / 1000).toFixed(2)} s\n`);
  });
}
