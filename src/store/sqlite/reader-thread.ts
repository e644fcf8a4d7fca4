/**
 * Entry point of a reader thread: one read-only connection answering queries, so a long query
 * (an aggregate over a million readings) costs its own caller time, never the event loop that
 * parses every other request.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ReaderReady, ReadRequest, ReadResponse } from './reader-protocol.js';
import { SqliteReads } from './reads.js';

const port = parentPort!;
let reads: SqliteReads;
try {
  reads = new SqliteReads((workerData as { file: string }).file);
  port.postMessage({ ready: true } satisfies ReaderReady);
} catch (err) {
  port.postMessage({ ready: false, message: (err as Error).message } satisfies ReaderReady);
  process.exit(1);
}

port.on('message', (request: ReadRequest | { op: 'close' }) => {
  if (request.op === 'close') {
    reads.close();
    port.close();
    return;
  }
  let response: ReadResponse;
  try {
    const method = reads[request.op] as (...args: unknown[]) => unknown;
    const read = () => method.apply(reads, request.args);
    response = { id: request.id, ok: true, result: request.journal ? reads.withJournal(read) : read() };
  } catch (err) {
    const error = err as Error;
    response = { id: request.id, ok: false, error: { name: error.name, message: error.message } };
  }
  port.postMessage(response);
});
