/**
 * A client that goes away in the middle of its body is the client's doing: nothing is logged as an
 * unexpected (500) error, and the server goes on serving.
 */
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTally } from '../helpers.js';

let t: Awaited<ReturnType<typeof startTally>>;
let port: number;
const logged: string[] = [];

beforeAll(async () => {
  t = await startTally({ TALLY_LOG_LEVEL: 'warn' }, { logStream: { write: (line) => void logged.push(line) } });
  port = Number(new URL(await t.tally.listen()).port);
});
afterAll(() => t.stop());

/** Sends a head and part of a body, then drops the connection. */
function cutShort(head: string, body: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(head);
    socket.write(body);
    setTimeout(() => {
      socket.destroy();
      setTimeout(resolve, 200);
    }, 200);
  });
}

const line = '{"device_id":"cut","ts":"2024-01-01T00:00:00Z"}\n';
const chunk = (text: string) => Buffer.from(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);

test.each([
  ['NDJSON, chunked', 'Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked', chunk(line)],
  ['NDJSON, Content-Length', 'Content-Type: application/x-ndjson\r\nContent-Length: 1000', Buffer.from(line)],
  ['NDJSON, gzip', 'Content-Type: application/x-ndjson\r\nContent-Encoding: gzip\r\nContent-Length: 1000', gzipSync(line.repeat(50)).subarray(0, 40)],
  ['JSON', 'Content-Type: application/json\r\nContent-Length: 1000', Buffer.from(`[${line}`)],
  ['JSON, gzip', 'Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 1000', gzipSync(`[${line.repeat(50)}`).subarray(0, 40)],
])('%s cut short: nothing logged as an error', async (_name, headers, body) => {
  await cutShort(`POST /v1/readings HTTP/1.1\r\nHost: tally\r\n${headers}\r\n\r\n`, body);
  expect(logged.filter((l) => JSON.parse(l).level >= 50)).toEqual([]);
  const res = await t.tally.server.inject({ method: 'GET', url: '/v1/devices/cut' });
  expect(res.statusCode).toBe(404);
});
