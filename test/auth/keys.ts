import { issueKey, type Scope } from '../../src/domain/api-key.js';
import type { Tally } from '../../src/app/tally.js';

/** Test helpers for API keys: keys written straight into a running Tally's store. */

/** Creates a key in `tally`'s store and reloads its ring (no waiting for the refresh); returns the key. */
export async function createKey(tally: Tally, name: string, scopes: Scope[], devicePrefix: string | null = null): Promise<string> {
  const issued = issueKey(name, scopes, devicePrefix, Date.now() * 1000);
  if (!(await tally.store.writeKeys({ kind: 'create', record: issued.record }))) throw new Error(`key ${name} exists`);
  await tally.keys.load();
  return issued.key;
}

export async function revokeKey(tally: Tally, name: string): Promise<void> {
  if (!(await tally.store.writeKeys({ kind: 'revoke', name, nowUs: Date.now() * 1000 }))) throw new Error(`no key ${name}`);
  await tally.keys.load();
}

export const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
