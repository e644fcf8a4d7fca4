import { parseArgs } from 'node:util';
import { issueKey, KEY_NAME, SCOPES, type ApiKeyRecord, type Scope } from '../../domain/api-key.js';
import { LIMITS } from '../../domain/reading.js';
import { openKeyStore } from '../../store/index.js';
import { ConfigError, loadConfig } from '../config.js';
import { SETTING_OPTIONS, settingArgs } from './args.js';

/** The flags of `tally keys`; every other flag is a setting (the store, mostly). */
const KEY_FLAGS = { scope: { type: 'string', multiple: true }, name: { type: 'string' }, 'device-prefix': { type: 'string' }, all: { type: 'boolean' }, json: { type: 'boolean' } } as const;

export const KEYS_HELP = `  keys create --scope <ingest|read|admin>[,...] --name <name> [--device-prefix <prefix>]
           print a new API key, once, alone on the last line (only its SHA-256 is stored)
  keys list [--all] [--json]
           names, scopes, device prefixes, created, last used (never the keys); --all with revoked ones
  keys revoke <name>
           the key stops working on every node within a second`;

function scopesOf(values: readonly string[] | undefined): Scope[] {
  const scopes = (values ?? []).flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  if (scopes.length === 0) throw new ConfigError(`--scope is required: one or more of ${SCOPES.join(', ')}`);
  for (const scope of scopes) {
    if (!(SCOPES as readonly string[]).includes(scope)) throw new ConfigError(`--scope must be one of ${SCOPES.join(', ')}, got ${JSON.stringify(scope)}`);
  }
  // In one order whatever the order given, so listings compare.
  return SCOPES.filter((s) => scopes.includes(s));
}

const iso = (us: number | null): string => (us === null ? '-' : new Date(Math.floor(us / 1000)).toISOString());

function table(keys: readonly ApiKeyRecord[]): string {
  const rows = [
    ['NAME', 'SCOPES', 'DEVICES', 'CREATED', 'LAST USED', 'REVOKED'],
    ...keys.map((k) => [k.name, k.scopes.join(','), k.devicePrefix === null ? '*' : `${k.devicePrefix}*`, iso(k.createdUs), iso(k.lastUsedUs), iso(k.revokedUs)]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

/** `tally keys <create|list|revoke>`: the API keys of the configured store (TALLY_STORE / TALLY_DATA_DIR). */
export async function keysCommand(argv: string[], out: (text: string) => void): Promise<number> {
  const [action, ...rest] = argv;
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options: { ...SETTING_OPTIONS, ...KEY_FLAGS }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const { positionals } = parsed;
  const values = parsed.values as { scope?: string[]; name?: string; 'device-prefix'?: string; all?: boolean; json?: boolean };
  const config = loadConfig(process.env, settingArgs(parsed.values));
  if (action !== 'create' && action !== 'list' && action !== 'revoke') {
    throw new ConfigError(`tally keys needs create, list or revoke, got ${JSON.stringify(action ?? '')}\n${KEYS_HELP}`);
  }
  // Checked before the store is opened: a bad flag changes nothing.
  if (action === 'create') {
    const name = values.name ?? '';
    if (!KEY_NAME.test(name)) throw new ConfigError('--name is required: 1-64 letters, digits and . _ : @ -, starting with a letter or digit');
    const prefix = values['device-prefix'];
    if (prefix !== undefined && (prefix === '' || prefix.length > LIMITS.deviceIdMaxLength)) {
      throw new ConfigError(`--device-prefix must be 1 to ${LIMITS.deviceIdMaxLength} characters`);
    }
    scopesOf(values.scope);
  }
  if (action === 'revoke' && positionals.length !== 1) throw new ConfigError('tally keys revoke needs the name of the key');

  const store = await openKeyStore(config.store);
  try {
    const nowUs = Date.now() * 1000;
    switch (action) {
      case 'create': {
        const issued = issueKey(values.name!, scopesOf(values.scope), values['device-prefix'] ?? null, nowUs);
        if (!(await store.writeKeys({ kind: 'create', record: issued.record }))) {
          process.stderr.write(`tally: a key named ${JSON.stringify(values.name)} already exists; revoke it first or choose another name\n`);
          return 1;
        }
        const r = issued.record;
        out(`created key ${JSON.stringify(r.name)}: scopes ${r.scopes.join(',')}, devices ${r.devicePrefix === null ? 'all' : `${JSON.stringify(r.devicePrefix)}*`}\n`);
        out('store it now: it is shown once, and only its SHA-256 is kept\n');
        out(`${issued.key}\n`);
        return 0;
      }
      case 'list': {
        const keys = (await store.listKeys()).filter((k) => values.all === true || k.revokedUs === null);
        if (values.json === true) {
          // Never the hash either: what identifies a key to an operator is its name.
          const shown = keys.map(({ hash: _hash, ...k }) => k);
          out(`${JSON.stringify(shown, null, 2)}\n`);
        } else {
          out(`${table(keys)}\n`);
        }
        return 0;
      }
      case 'revoke': {
        const name = positionals[0]!;
        if (!(await store.writeKeys({ kind: 'revoke', name, nowUs }))) {
          process.stderr.write(`tally: no active key is named ${JSON.stringify(name)}\n`);
          return 1;
        }
        out(`revoked key ${JSON.stringify(name)}: every node refuses it within a second\n`);
        return 0;
      }
    }
  } finally {
    await store.close();
  }
}
