#!/usr/bin/env node
import { StorageUnavailableError } from '../domain/errors.js';
import { ConfigError, loadConfig, SETTINGS } from './config.js';
import { migrateStore } from './migrate.js';
import { createTally } from './tally.js';
import type { StoreConfig } from '../store/index.js';

/** What a log line says of the store: enough to find it, nothing secret. */
function describeStore(store: StoreConfig): Record<string, unknown> {
  if (store.backend === 'postgres') return { backend: store.backend, url: store.postgres.display, poolSize: store.postgres.poolSize };
  return { backend: store.backend, file: store.sqlite.file, synchronous: store.sqlite.synchronous };
}

const HELP = `Usage: tally <command> [flags]

Commands:
  serve    run the service (default)
  migrate  bring the store's schema up to date, then exit
  help     show this text

Flags mirror environment variables; a flag wins over its variable:
${Object.values(SETTINGS)
  .map((s) => `  --${s.flag.padEnd(14)} ${s.env.padEnd(20)} ${s.help} (default ${s.fallback})`)
  .join('\n')}
`;

async function serve(argv: string[]): Promise<void> {
  const config = loadConfig(process.env, argv);
  const tally = await createTally(config);
  const address = await tally.listen();
  tally.server.log.info({ address, store: describeStore(config.store) }, 'tally listening');
  const stop = (signal: string) => {
    tally.server.log.info({ signal }, 'shutting down: draining the write queue');
    tally.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

async function migrate(argv: string[]): Promise<void> {
  const config = loadConfig(process.env, argv);
  await migrateStore(config.store);
  process.stdout.write(`tally: schema up to date: ${JSON.stringify(describeStore(config.store))}\n`);
}

async function main(args: string[]): Promise<void> {
  const [command = 'serve', ...rest] = args;
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(HELP);
    return;
  }
  if (command === 'serve') return serve(rest);
  if (command === 'migrate') return migrate(rest);
  if (command.startsWith('--')) return serve(args);
  process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${HELP}`);
  process.exitCode = 2;
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`tally: invalid configuration: ${err.message}\n`);
    process.exit(2);
  }
  // The store being away is an answer, not a bug: its message, without a stack.
  if (err instanceof StorageUnavailableError) process.stderr.write(`tally: ${err.message}\n`);
  else process.stderr.write(`tally: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
