/**
 * Slow clients against a Tally process: 500 connections trickling their headers a byte a second
 * (slowloris) do not keep a normal client from being served, the headers timeout closes them, and
 * connections beyond TALLY_MAX_CONNECTIONS are closed as they arrive.
 */
import { request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { sleep } from '../../bench/proc.js';
import { startTallyProcess } from './tally-process.js';

const TRICKLERS = 500;
const HEADERS_TIMEOUT_MS = 4_000;
const MAX_CONNECTIONS = 600;

let tally: Awaited<ReturnType<typeof startTallyProcess>>;
let port: number;

beforeAll(async () => {
  tally = await startTallyProcess({
    TALLY_HEADERS_TIMEOUT: `${HEADERS_TIMEOUT_MS}ms`,
    TALLY_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
  });
  port = Number(new URL(tally.url).port);
}, 30_000);
afterAll(() => tally?.stop());

/** A raw connection and what happened to it: when it closed (ms after `start`) and what it got. */
interface Watched {
  readonly socket: Socket;
  readonly start: number;
  closedAt?: number;
  received: string;
}

function open(): Watched {
  const socket = connect(port, '127.0.0.1');
  const watched: Watched = { socket, start: performance.now(), received: '' };
  socket.on('data', (chunk) => (watched.received += chunk.toString('latin1')));
  socket.on('error', () => {});
  socket.on('close', () => (watched.closedAt = performance.now() - watched.start));
  return watched;
}

/** Sends the start of a request, then one more header byte a second until the socket closes. */
function trickle(watched: Watched): void {
  watched.socket.write('GET /v1/devices HTTP/1.1\r\nHost: tally\r\nX-Slow: ');
  const timer = setInterval(() => {
    if (watched.closedAt !== undefined || watched.socket.destroyed) clearInterval(timer);
    else watched.socket.write('a');
  }, 1_000);
}

/** One GET from a normal client on a fresh connection (`agent: false`), or on `agent`'s. */
function normalGet(path: string, agent: import('node:http').Agent | false = false): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, ms: performance.now() - started }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path}: no answer within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

test('500 tricklers: a normal client is served promptly throughout, and the headers timeout closes every trickler', async () => {
  const tricklers = Array.from({ length: TRICKLERS }, open);
  tricklers.forEach(trickle);
  // The normal client, on fresh connections, every 100 ms while the attack lasts.
  const answers: Array<{ status: number; ms: number }> = [];
  const attackEnds = performance.now() + HEADERS_TIMEOUT_MS + 500;
  while (performance.now() < attackEnds) {
    answers.push(await normalGet('/v1/devices?limit=1'));
    answers.push(await normalGet('/healthz'));
    await sleep(100);
  }
  // Tricklers close within the timeout plus Node's 1 s check period (and some slack for a busy machine).
  const deadline = performance.now() + 5_000;
  while (tricklers.some((t) => t.closedAt === undefined) && performance.now() < deadline) await sleep(100);

  const ms = answers.map((a) => a.ms).sort((a, b) => a - b);
  console.log(`slowloris: ${TRICKLERS} tricklers; normal client ${answers.length} requests, median ${ms[ms.length >> 1]!.toFixed(1)} ms, worst ${ms[ms.length - 1]!.toFixed(1)} ms`);
  expect(answers.length).toBeGreaterThan(10);
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  // Promptly: far under the time a trickler is allowed to hold its connection.
  expect(Math.max(...answers.map((a) => a.ms)), JSON.stringify(answers.map((a) => Math.round(a.ms)))).toBeLessThan(2_000);
  const open_ = tricklers.filter((t) => t.closedAt === undefined).length;
  expect(open_, 'tricklers still open').toBe(0);
  const closedAfter = tricklers.map((t) => t.closedAt!);
  // Not before the timeout: they were closed by it, not by anything else.
  expect(Math.min(...closedAfter)).toBeGreaterThan(HEADERS_TIMEOUT_MS - 500);
  expect(tricklers.filter((t) => t.received.startsWith('HTTP/1.1 408 ')).length).toBe(TRICKLERS);
}, 30_000);

test('connections beyond TALLY_MAX_CONNECTIONS are closed as they arrive; a client already connected is still served', async () => {
  const { Agent } = await import('node:http');
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  expect((await normalGet('/api/ping', keepAlive)).status).toBe(200);
  // The cap counts the normal client's connection (and any this process's fetch keeps alive): at most 599 of 650 kept.
  const attempts = Array.from({ length: MAX_CONNECTIONS + 50 }, open);
  await sleep(1_500);
  const dropped = attempts.filter((a) => a.closedAt !== undefined);
  const kept = attempts.length - dropped.length;
  expect(kept).toBeLessThanOrEqual(MAX_CONNECTIONS - 1);
  expect(kept).toBeGreaterThanOrEqual(MAX_CONNECTIONS - 5);
  // Dropped at once, with no answer: the server never read from them.
  expect(dropped.every((a) => a.received === '' && a.closedAt! < 1_500)).toBe(true);
  // The kept ones are idle: nothing sent, still open, costing no more than their socket.
  const during = await normalGet('/api/ping', keepAlive);
  expect(during.status).toBe(200);
  expect(during.ms).toBeLessThan(2_000);
  // The headers timeout covers a connection that never sends a byte, too.
  const deadline = performance.now() + HEADERS_TIMEOUT_MS + 5_000;
  while (attempts.some((a) => a.closedAt === undefined) && performance.now() < deadline) await sleep(100);
  expect(attempts.filter((a) => a.closedAt === undefined).length).toBe(0);
  // Room again: a fresh connection is served.
  expect((await normalGet('/api/ping')).status).toBe(200);
  keepAlive.destroy();
}, 30_000);
