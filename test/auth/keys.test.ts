import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/app/config.js';
import { createTally } from '../../src/app/tally.js';
import { issueKey } from '../../src/domain/api-key.js';
import { openKeyStore } from '../../src/store/index.js';
import { runCli } from '../cli.js';
import { startTally, tempDir } from '../helpers.js';
import { get, postReadings, type Harness } from '../http/client.js';
import { createDatabase, describePg, type TestDatabase } from '../pg/database.js';
import { bearer, createKey } from './keys.js';

/** `tally keys ...` as a user runs it: a process of its own, on the store its environment names. */
const tallyKeys = (args: string[], env: Record<string, string>) => runCli(['keys', ...args], env);

/** Polls until `check` holds, or fails after `withinMs`; resolves how long it took. */
async function within(withinMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return performance.now() - start;
    if (performance.now() - start > withinMs) throw new Error(`not within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const status = async (t: Harness, key?: string) => (await get(t, '/v1/devices', key === undefined ? {} : bearer(key))).status;

describe('tally keys, beside a running server on the same SQLite file', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startTally();
  });
  afterAll(() => t.stop());
  const env = () => ({ TALLY_DATA_DIR: t.dir });

  test('auto mode: open with no key; a key created by the command turns auth on within a second; revoked, refused within a second', async () => {
    expect(await status(t)).toBe(200);
    const created = await tallyKeys(['create', '--scope', 'read,ingest', '--name', 'gateway-7'], env());
    expect(created.code, created.stderr).toBe(0);
    const lines = created.stdout.trimEnd().split('\n');
    const key = lines.at(-1)!;
    expect(key).toMatch(/^tally_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    expect(lines.slice(0, -1).join('\n')).not.toContain(key);

    expect(await within(1500, async () => (await status(t)) === 401)).toBeLessThan(1500);
    expect(await status(t, key)).toBe(200);

    const listed = await tallyKeys(['list'], env());
    expect(listed.stdout).toContain('gateway-7');
    expect(listed.stdout).toContain('ingest,read');
    expect(listed.stdout).not.toContain(key);
    expect(listed.stdout).not.toContain(key.slice(-43));
    const json = await tallyKeys(['list', '--json'], env());
    expect(JSON.parse(json.stdout)).toEqual([expect.objectContaining({ name: 'gateway-7', scopes: ['ingest', 'read'], devicePrefix: null })]);
    expect(json.stdout).not.toContain('hash');

    expect((await tallyKeys(['revoke', 'gateway-7'], env())).code).toBe(0);
    const took = await within(1500, async () => (await status(t, key)) === 401);
    expect(took).toBeLessThan(1500);
    expect((await tallyKeys(['revoke', 'gateway-7'], env())).code).toBe(1);
    expect((await tallyKeys(['list', '--all'], env())).stdout).toContain('gateway-7');
    // The last key revoked, auth stays on: revoking must never open the server.
    expect(await status(t)).toBe(401);
  });

  test('bad flags change nothing and say what is wrong', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['create', '--name', 'x'], /--scope is required/],
      [['create', '--scope', 'write', '--name', 'x'], /--scope must be one of ingest, read, admin/],
      [['create', '--scope', 'read'], /--name is required/],
      [['create', '--scope', 'read', '--name', 'bad name'], /--name is required/],
      [['revoke'], /needs the name/],
      [['rotate'], /needs create, list or revoke/],
    ];
    for (const [args, message] of cases) {
      const res = await tallyKeys(args, env());
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stderr).toMatch(message);
    }
    expect((await tallyKeys(['create', '--scope', 'read', '--name', 'dup'], env())).code).toBe(0);
    const dup = await tallyKeys(['create', '--scope', 'read', '--name', 'dup'], env());
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already exists');
  });
});

describe('a kept-alive connection', () => {
  test('the key it checked once is checked again after each refresh: revoked, refused on the same connection within a second', async () => {
    const t = await startTally({ TALLY_AUTH: 'on' });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const base = new URL(await t.tally.listen());
      const key = await createKey(t.tally, 'kept', ['read']);
      const sockets = new Set<unknown>();
      const statusOn = (headers: Record<string, string>) =>
        new Promise<number>((resolve, reject) => {
          const req = request({ host: base.hostname, port: base.port, path: '/v1/devices', agent, headers }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          });
          req.on('socket', (socket) => sockets.add(socket));
          req.on('error', reject);
          req.end();
        });
      for (let i = 0; i < 5; i++) expect(await statusOn(bearer(key))).toBe(200);
      // A wrong key on the connection that passed is still refused (compared, not assumed).
      expect(await statusOn(bearer(`${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`))).toBe(401);
      expect(await statusOn(bearer(key))).toBe(200);
      await t.tally.store.writeKeys({ kind: 'revoke', name: 'kept', nowUs: Date.now() * 1000 });
      expect(await within(1500, async () => (await statusOn(bearer(key))) === 401)).toBeLessThan(1500);
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
      await t.stop();
    }
  });
});

describe('modes and exposure', () => {
  test('TALLY_AUTH=off: reads and writes open, admin routes still need an admin key', async () => {
    const t = await startTally({ TALLY_AUTH: 'off' });
    try {
      const admin = await createKey(t.tally, 'ops', ['admin']);
      expect(await status(t)).toBe(200);
      expect((await postReadings(t, [{ device_id: 'm-1', ts: '2026-01-01T00:00:00Z' }])).status).toBe(200);
      const del = await t.tally.server.inject({ method: 'DELETE', url: '/v1/devices/m-1' });
      expect(del.statusCode).toBe(401);
      expect((await t.tally.server.inject({ method: 'DELETE', url: '/v1/devices/m-1', headers: bearer(admin) })).statusCode).toBe(204);
    } finally {
      await t.stop();
    }
  });

  test('a non-loopback address with no key refuses to start, saying how to create one; off or a key lets it start', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const config = (env: Record<string, string>) => loadConfig({ TALLY_DATA_DIR: dir, TALLY_HOST: '0.0.0.0', TALLY_PORT: '0', TALLY_LOG_LEVEL: 'silent', ...env });
      for (const auth of ['auto', 'on']) {
        const refused = createTally(config({ TALLY_AUTH: auth }));
        await expect(refused).rejects.toBeInstanceOf(ConfigError);
        await expect(refused).rejects.toThrow(/tally keys create --scope admin/);
      }
      const open = await createTally(config({ TALLY_AUTH: 'off' }));
      await open.close();
      const keys = await openKeyStore(config({}).store);
      await keys.writeKeys({ kind: 'create', record: issueKey('ops', ['admin'], null, Date.now() * 1000).record });
      await keys.close();
      const secured = await createTally(config({}));
      await secured.server.ready();
      expect((await secured.server.inject({ method: 'GET', url: '/v1/devices' })).statusCode).toBe(401);
      expect((await secured.server.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      await secured.close();
    } finally {
      cleanup();
    }
  });

  test('TALLY_ADMIN_TOKEN still works, as an admin credential', async () => {
    const token = 'an-admin-token-of-old-0123456789';
    const t = await startTally({ TALLY_AUTH: 'on', TALLY_ADMIN_TOKEN: token });
    try {
      expect(await status(t)).toBe(401);
      expect(await status(t, token)).toBe(200);
      expect((await t.tally.server.inject({ method: 'GET', url: '/v1/devices', headers: { 'x-api-key': token } })).statusCode).toBe(200);
    } finally {
      await t.stop();
    }
  });
});

describe('keys never leak', () => {
  test('not in any log line, error body or metric, whatever header carried them', async () => {
    const lines: string[] = [];
    const t = await startTally(
      { TALLY_AUTH: 'on', TALLY_LOG_LEVEL: 'trace', TALLY_REQUEST_LOG: 'on' },
      { logStream: { write: (line: string) => void lines.push(line) } },
    );
    try {
      const good = await createKey(t.tally, 'logged-reader', ['read']);
      const revoked = await createKey(t.tally, 'logged-gone', ['read']);
      await t.tally.store.writeKeys({ kind: 'revoke', name: 'logged-gone', nowUs: Date.now() * 1000 });
      await t.tally.keys.load();
      const wrongSecret = `${good.slice(0, -4)}AAAA`;
      const bodies: string[] = [];
      for (const key of [good, revoked, wrongSecret, 'tally_not_a_key']) {
        for (const headers of [bearer(key), { 'x-api-key': key }, { authorization: `Token ${key}` }, { authorization: `Basic ${Buffer.from(`u:${key}`).toString('base64')}` }]) {
          for (const url of ['/v1/devices', '/metrics', '/v1/devices/x/aggregate?every=nope', '/nowhere']) {
            bodies.push((await t.tally.server.inject({ method: 'GET', url, headers })).body);
          }
        }
      }
      const metrics = (await t.tally.server.inject({ method: 'GET', url: '/metrics', headers: bearer(good) })).body;
      const openapi = (await t.tally.server.inject({ method: 'GET', url: '/openapi.json', headers: bearer(good) })).body;
      const log = lines.join('');
      expect(log).toContain('logged-gone'); // a refused key is named in the log...
      for (const key of [good, revoked, wrongSecret]) {
        const secret = key.slice(-43);
        for (const [what, text] of [['log', log], ['bodies', bodies.join('\n')], ['metrics', metrics], ['openapi', openapi]] as const) {
          expect(text.includes(secret), `${what} holds a key`).toBe(false); // ...never the key
        }
      }
    } finally {
      await t.stop();
    }
  });
});

describePg('two nodes on one PostgreSQL database share their keys', () => {
  let db: TestDatabase;
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    db = await createDatabase();
    a = await startTally({ TALLY_STORE: db.url, TALLY_AUTH: 'on' });
    b = await startTally({ TALLY_STORE: db.url, TALLY_AUTH: 'on' });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await db?.drop();
  });

  test('a key created on one node works on the other within a second; revoked on one, refused by the other within a second', async () => {
    const key = await createKey(a.tally, 'shared', ['read']);
    expect(await within(1500, async () => (await status(b, key)) === 200)).toBeLessThan(1500);
    await b.tally.store.writeKeys({ kind: 'revoke', name: 'shared', nowUs: Date.now() * 1000 });
    expect(await within(1500, async () => (await status(a, key)) === 401)).toBeLessThan(1500);
  });

  test('the command works against PostgreSQL too, and last use is recorded', async () => {
    const created = await tallyKeys(['create', '--scope', 'read', '--name', 'pg-cli'], { TALLY_STORE: db.url });
    expect(created.code, created.stderr).toBe(0);
    const key = created.stdout.trimEnd().split('\n').at(-1)!;
    await within(1500, async () => (await status(a, key)) === 200);
    await a.tally.keys.flush();
    const listed = JSON.parse((await tallyKeys(['list', '--json'], { TALLY_STORE: db.url })).stdout) as Array<{ name: string; lastUsedUs: number | null }>;
    expect(listed.find((k) => k.name === 'pg-cli')?.lastUsedUs).toBeGreaterThan(0);
  });
});
