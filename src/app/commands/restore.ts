import { resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { commandArgs, oneFile, reportingErrors } from './args.js';
import { postgresBackupAdvice } from './backup.js';

/**
 * `tally restore <file> [--force]`: checks a backup, then puts it in place as the configured SQLite
 * store; refuses while Tally runs on it, and refuses to replace an existing store without --force.
 */
export async function restoreCommand(argv: string[]): Promise<void> {
  const { on, positionals, rest } = commandArgs(argv, ['force']);
  const file = resolve(oneFile(positionals, 'tally restore <file> [--force] [setting flags]'));
  const config = loadConfig(process.env, rest);
  if (config.store.backend === 'postgres') {
    process.stderr.write(postgresBackupAdvice(config.store, 'restore'));
    process.exitCode = 2;
    return;
  }
  const { restoreDatabase } = await import('../../store/sqlite/backup.js');
  const target = config.store.sqlite.file;
  await reportingErrors('restore', () => {
    const result = restoreDatabase(file, target, { overwrite: on.has('force') });
    process.stdout.write(`tally restore: ${file} checked and restored as ${result.file} (${result.bytes} bytes); start Tally on it\n`);
  });
}
