#!/usr/bin/env node
import { StorageUnavailableError } from '../domain/errors.js';
import { keysCommand, KEYS_HELP } from './commands/keys.js';
import { importCommand } from './commands/import.js';
import { ConfigError, loadConfig, SETTINGS } from './config.js';
import { migrateStore } from './migrate.js';
import { createTally } from './tally.js';
import type { StoreConfig } from '../store/index.js';

/** What a log line says of the store: enough to find it, nothing secret. */
function describeStore(store: StoreConfig): Record<string, unknown> {
  if (store.backend === 'postgres') return { backend: store.backend, url: store.postgres.display, poolSize: store.postgres.poolSize };
  return { backend: store.backend, file: store.sqlite.file, synchronous: store.sqlite.synchronous };
}

/** One line per setting, its columns as wide as the longest flag and variable. */
function settingLines(): string {
  const settings = Object.values(SETTINGS);
  const flagWidth = Math.max(...settings.map((s) => s.flag.length));
  const envWidth = Math.max(...settings.map((s) => s.env.length));
  return settings
    .map((s) => `  --${s.flag.padEnd(flagWidth)} ${s.env.padEnd(envWidth)} ${s.help}${s.fallback === '' ? '' : ` (default ${s.fallback})`}`)
    .join('\n');
}

const HELP = `Usage: tally <command> [flags]

Commands:
  serve    run the service (default)
  mqtt-drain [<from>]
           empty and end the MQTT sessions of a node (TALLY_MQTT_CLIENT_ID, TALLY_MQTT_CONNECTIONS)
           that will not come back, or of its connections <from> and up; see README, MQTT
  migrate  bring the store's schema up to date, then exit
${KEYS_HELP}
  audit [--full] [--json]
           check every device summary against its readings, every stored reading decodes, and the
           store's own check (SQLite quick_check; --full: integrity_check); exit 1 on any mismatch
  backup <file> [--force]
           SQLite: a consistent, checked copy of the store while it serves (PostgreSQL: use pg_dump)
  restore <file> [--force]
           SQLite: check a backup and put it in place as the store (Tally stopped; --force replaces one)
  import <file>|- [--format ndjson|csv|lp] [--precision ns|us|ms|s] [--url http://host:port]
           store the readings of an NDJSON, CSV or line-protocol file (.gz too; - reads standard
           input) in the configured store through the ingest path, or through a running Tally
           (--url); exit 1 if lines were rejected. See README, Export and import
  help     show this text

Flags mirror environment variables; a flag wins over its variable:
${settingLines()}
`;

async function serve(argv: string[]): Promise<void> {
  const config = loadConfig(process.env, argv);
  const tally = await createTally(config);
  const address = await tally.listen();
  // The broker without credentials a URL may carry.
  const mqtt = config.mqtt && { broker: new URL(config.mqtt.url).host, prefix: config.mqtt.prefix, connections: config.mqtt.connections };
  tally.server.log.info({ address, store: describeStore(config.store), mqtt }, 'tally listening');
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

/** Stores what the leaving sessions hold, then ends them (the store and broker of a normal start). */
async function drainMqtt(argv: string[]): Promise<void> {
  const from = /^\d+$/.test(argv[0] ?? '') ? Number(argv.shift()) : 0;
  const config = loadConfig(process.env, argv);
  if (config.mqtt === undefined) throw new ConfigError(`mqtt-drain needs ${SETTINGS.mqttUrl.env}`);
  const tally = await createTally(config);
  try {
    await tally.mqtt!.ready();
    await tally.mqtt!.drain(from);
    tally.server.log.info({ clientId: config.mqtt.clientId, from, ...tally.mqtt!.stats() }, 'mqtt sessions drained and ended');
  } finally {
    await tally.close();
  }
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
  if (command === 'mqtt-drain') return drainMqtt(rest);
  if (command === 'migrate') return migrate(rest);
  if (command === 'keys') {
    process.exitCode = await keysCommand(rest, (text) => process.stdout.write(text));
    return;
  }
  if (command === 'audit') return (await import('./commands/audit.js')).auditCommand(rest);
  if (command === 'backup') return (await import('./commands/backup.js')).backupCommand(rest);
  if (command === 'restore') return (await import('./commands/restore.js')).restoreCommand(rest);
  if (command === 'import') {
    process.exitCode = await importCommand(rest);
    return;
  }
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
