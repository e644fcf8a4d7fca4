/**
 * Fuzz: at least 10,000 generated hostile requests (test/hostile/fuzz-requests.ts) across every
 * route of /openapi.json, plus raw malformed ones on sockets, against a listening Tally. Zero 5xx,
 * the server alive, and the store changed only by readings the requests named: the baseline devices
 * are exactly as they were and every other stored device is one a request put in a write.
 *
 * Run twice, half the requests each: on an open Tally, and with TALLY_AUTH=on, where each request
 * carries one of no key, a malformed or unknown one, a revoked one, a read key, a device-bound ingest
 * key or an admin key (and a key-shaped header the fuzz itself mangles now and then).
 *
 * The seed is printed; TALLY_FUZZ_SEED=<n> replays a run, TALLY_FUZZ_REQUESTS=<n> changes its size.
 */
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { expect, test } from 'vitest';
import type { DeviceSummary } from '../../src/store/types.js';
import { bearer, createKey, revokeKey } from '../auth/keys.js';
import { startTally } from '../helpers.js';
import { rng } from '../http/client.js';
import { fuzzRequest, rawRequest, routesOf, type FuzzRequest, type Route } from './fuzz-requests.js';

const SEED = Number(process.env.TALLY_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const REQUESTS = Number(process.env.TALLY_FUZZ_REQUESTS ?? 10_000);
const RAW_REQUESTS = Math.ceil(REQUESTS / 20);
const CONCURRENCY = 8;

let t: Awaited<ReturnType<typeof startTally>>;
let base: URL;
let errorLines: string[] = [];
/** Headers the run's own requests (baseline, cursors, checks) carry: an admin key when auth is on. */
let ownHeaders: Record<string, string> = {};

interface Answer {
  readonly status: number | undefined;
  readonly body: string;
}

let agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const guarded = new WeakSet<object>();

/**
 * Sends with node's client; what it refuses to send (bad characters) goes raw. A request that got
 * no answer is sent once more on a fresh connection: the kept-alive one it was given may have been
 * closed by the server after the previous request's error (a race of keep-alive, not an answer).
 */
async function send(req: FuzzRequest): Promise<Answer> {
  const answer = await sendOnce(req, agent);
  return answer.status === undefined ? sendOnce(req, false) : answer;
}

function sendOnce(req: FuzzRequest, agent: Agent | false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let out;
    try {
      out = request(
        { host: base.hostname, port: base.port, method: req.method, path: req.target, agent, headers: req.headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8').slice(0, 500) }));
          res.on('error', () => resolve({ status: res.statusCode, body: '(answer cut)' }));
        },
      );
    } catch {
      sendRaw(rawOf(req)).then(resolve, reject);
      return;
    }
    // Rarely a kept-alive connection the server is closing (after a 431) takes a request and never
    // answers: given up on after 10 s and sent again on a fresh connection (send), not waited for 30.
    out.setTimeout(10_000, () => out.destroy(new Error('no answer within 10 s')));
    // A server that answers early (413) and closes may reset the socket while the body is still
    // being written, after node's client has let go of it: that error is expected, not uncaught.
    out.on('socket', (socket) => {
      if (guarded.has(socket)) return;
      guarded.add(socket);
      socket.on('error', () => {});
    });
    // A server that refuses a body early (413, 415) may close before all of it is sent.
    out.on('error', (err) => resolve({ status: undefined, body: `(client: ${err.message})` }));
    out.end(req.body);
  });
}

/** The request as bytes, with whatever characters it has. */
function rawOf(req: FuzzRequest): Buffer {
  const headers = { host: base.host, connection: 'close', ...req.headers, 'content-length': String(req.body?.length ?? 0) };
  const head = `${req.method} ${req.target} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), req.body ?? Buffer.alloc(0)]);
}

/** Writes bytes on a fresh connection and reads until the server closes it; the status line's code, if any. */
function sendRaw(bytes: Buffer | string): Promise<Answer> {
  return new Promise((resolve) => {
    const socket = connect(Number(base.port), base.hostname);
    let got = '';
    const done = () => {
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      resolve({ status: match ? Number(match[1]) : undefined, body: got.slice(0, 500) });
    };
    socket.setTimeout(30_000, () => socket.destroy());
    socket.on('data', (c) => (got += c.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', done);
    socket.end(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}

async function getJson(path: string): Promise<any> {
  const res = await fetch(new URL(path, base), { headers: ownHeaders });
  expect(res.status, path).toBe(200);
  return res.json();
}

/** Every device in the store, by id, read from the store itself. */
async function allDevices(): Promise<Map<string, DeviceSummary>> {
  const out = new Map<string, DeviceSummary>();
  let cursor: string | undefined;
  do {
    const page = await t.tally.store.listDevices({ sort: { by: 'deviceId' }, order: 'asc', limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    for (const d of page.items) out.set(d.deviceId, d);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return out;
}

/** Starts the Tally a run fuzzes; with auth on, the credentials its requests are given in turn. */
async function startFor(mode: 'open' | 'keyed'): Promise<Array<Record<string, string>>> {
  errorLines = [];
  agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  // NORMAL: no fsync per commit; durability is not what this test is about, and it is faster.
  const env = { TALLY_LOG_LEVEL: 'warn', TALLY_SYNCHRONOUS: 'NORMAL', ...(mode === 'keyed' ? { TALLY_AUTH: 'on' } : {}) };
  t = await startTally(env, { logStream: { write: (line) => void (JSON.parse(line).level >= 50 && errorLines.push(line)) } });
  base = new URL(await t.tally.listen());
  if (mode === 'open') {
    ownHeaders = {};
    return [{}];
  }
  const admin = await createKey(t.tally, 'fuzz-admin', ['admin']);
  ownHeaders = bearer(admin);
  const revoked = await createKey(t.tally, 'fuzz-revoked', ['admin']);
  await revokeKey(t.tally, 'fuzz-revoked');
  return [
    {},
    bearer('not-a-key'),
    bearer(`tally_000000000000_${'A'.repeat(43)}`),
    bearer(revoked),
    { 'x-api-key': await createKey(t.tally, 'fuzz-reader', ['read']) },
    bearer(await createKey(t.tally, 'fuzz-bound', ['ingest', 'read'], 'fuzz')),
    { authorization: `Token ${await createKey(t.tally, 'fuzz-writer', ['ingest'])}` },
    ownHeaders,
  ];
}

test.each(['open', 'keyed'] as const)(`${REQUESTS} hostile requests in two halves, this one %s, across every route: no 5xx, alive, the store changed only by the readings sent`, async (mode) => {
  const credentials = await startFor(mode);
  try {
    await fuzz(mode, credentials);
  } finally {
    agent.destroy();
    await t.stop();
  }
}, 300_000);

async function fuzz(mode: 'open' | 'keyed', credentials: ReadonlyArray<Record<string, string>>): Promise<void> {
  const seed = mode === 'open' ? SEED : SEED + 1;
  console.log(`fuzz seed ${SEED} (replay: TALLY_FUZZ_SEED=${SEED}), ${mode}`);
  const random = rng(seed);

  // A baseline the fuzz must leave exactly as it is.
  const baseline = Array.from({ length: 30 }, (_, d) =>
    Array.from({ length: 5 }, (_, i) => ({ device_id: `baseline-${d}`, ts: `2024-05-01T00:00:0${i}Z`, count: i + 1, payload: { temp: d + i / 10 } })),
  ).flat();
  const written = await fetch(new URL('/v1/readings', base), { method: 'POST', headers: { 'content-type': 'application/json', ...ownHeaders }, body: JSON.stringify(baseline) });
  expect(written.status).toBe(200);
  const before = await allDevices();
  expect(before.size).toBe(30);

  // Real cursors of several listings, for the fuzz to replay and tamper with.
  const cursors = [
    (await getJson('/v1/devices?limit=2')).next_cursor,
    (await getJson('/v1/devices?limit=2&sort=payload.temp&order=desc')).next_cursor,
    (await getJson('/v1/devices?limit=2&sort=latest_ts')).next_cursor,
    (await getJson('/v1/devices/baseline-1/readings?limit=1')).next_cursor,
    (await getJson('/records?limit=1')).next_cursor,
  ].filter((c): c is string => typeof c === 'string');
  expect(cursors.length).toBe(5);

  const openapi = await getJson('/openapi.json');
  const routes: Route[] = [
    ...routesOf(openapi),
    // Served but not documented: the document itself and the reference pages.
    { method: 'GET', path: '/openapi.json', query: [], pathParams: [], bodyTypes: [] },
    { method: 'GET', path: '/docs', query: [], pathParams: [], bodyTypes: [] },
    { method: 'GET', path: '/docs/{asset}', query: [], pathParams: ['asset'], bodyTypes: [] },
  ];
  expect(routes.length).toBeGreaterThanOrEqual(25);

  const deviceIds = new Set<string>();
  const ctx = { cursors, knownIds: [...before.keys()], deviceIds };
  // Every route gets its share: round robin over the routes, the request itself random.
  // Half the requests in each mode; each carries the next credential in turn (its own headers win).
  const count = Math.ceil(REQUESTS / 2);
  const requests = Array.from({ length: count }, (_, i) => {
    const req = fuzzRequest(random, routes[i % routes.length]!, ctx);
    return { ...req, headers: { ...credentials[i % credentials.length], ...req.headers } };
  });
  const raws = Array.from({ length: Math.ceil(RAW_REQUESTS / 2) }, () => rawRequest(random, routes));

  const statuses = new Map<string, number>();
  const failures: string[] = [];
  const slow: string[] = [];
  const record = (status: number | undefined, what: () => string, body: string) => {
    const key = status === undefined ? 'none' : String(status);
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
    if (status !== undefined && status >= 500) failures.push(`${status} for ${what()}: ${body.slice(0, 300)}`);
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < requests.length) {
        const req = requests[next++]!;
        const started = performance.now();
        const answer = await send(req);
        const ms = performance.now() - started;
        if (ms > 1000) slow.push(`${Math.round(ms)} ms: ${answer.status} ${req.method} ${req.target.slice(0, 100)} ${req.what.slice(0, 200)}`);
        record(answer.status, () => `${req.method} ${req.target.slice(0, 300)} ${JSON.stringify(req.headers).slice(0, 300)} ${req.what}`, answer.body);
      }
    }),
  );
  let nextRaw = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (nextRaw < raws.length) {
        const raw = raws[nextRaw++]!;
        const answer = await sendRaw(raw);
        record(answer.status, () => `raw ${JSON.stringify(raw.slice(0, 300))}`, answer.body);
      }
    }),
  );
  if (slow.length > 0) console.log(`fuzz seed ${SEED}: ${slow.length} answers took over 1 s, e.g.\n${slow.slice(0, 5).join('\n')}`);
  console.log(`fuzz seed ${SEED}: answers by status ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);

  expect(failures.slice(0, 10), `seed ${SEED}: ${failures.length} answers were 5xx`).toEqual([]);
  expect(errorLines.slice(0, 5), `seed ${SEED}: errors logged`).toEqual([]);
  // Nearly every request got an HTTP answer (a few are cut: a body refused early, a raw request
  // the server closes on without a status line).
  expect(statuses.get('none') ?? 0).toBeLessThan((requests.length + raws.length) / 50);
  // Alive.
  expect((await fetch(new URL('/healthz', base))).status).toBe(200);
  // With keys, the credentials were put to the test: refusals of both kinds were among the answers.
  if (mode === 'keyed') {
    expect(statuses.get('401') ?? 0).toBeGreaterThan(0);
    expect(statuses.get('403') ?? 0).toBeGreaterThan(0);
  }

  const after = await allDevices();
  for (const [id, summary] of before) expect(after.get(id), `baseline device ${id}`).toEqual(summary);
  const unknown = [...after.keys()].filter((id) => !before.has(id) && !deviceIds.has(id));
  expect(unknown.map((id) => JSON.stringify(id.slice(0, 100))), `seed ${SEED}: devices no request named`).toEqual([]);
  console.log(`fuzz seed ${SEED}: ${after.size - before.size} devices written by valid fuzz readings`);
}
