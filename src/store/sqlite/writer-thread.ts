/**
 * Entry point of the writer thread. Commits (and their fsyncs) run here so that the event loop
 * parsing requests never blocks on the disk.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SqliteStoreConfig } from './config.js';
import type { WriterReady, WriterRequest, WriterResponse } from './protocol.js';
import { SqliteWriter } from './writer.js';

const port = parentPort!;
let writer: SqliteWriter;
try {
  writer = new SqliteWriter(workerData as SqliteStoreConfig);
  port.postMessage({ ready: true } satisfies WriterReady);
} catch (err) {
  port.postMessage({ ready: false, message: (err as Error).message } satisfies WriterReady);
  process.exit(1);
}

let mergeScheduled = false;
let closed = false;

/**
 * Merges the inbox after the answer has gone and after the batches already waiting on the port:
 * a merge delays later batches by its own length, never an acknowledged one. A failed merge leaves
 * the inbox as it was (still read, still deduplicated), and the next append schedules it again.
 */
function scheduleMerge(): void {
  if (mergeScheduled) return;
  mergeScheduled = true;
  setImmediate(() => {
    mergeScheduled = false;
    if (!closed && writer.mergeDue) mergeQuietly();
  });
}

function mergeQuietly(): void {
  try {
    writer.mergeInbox();
  } catch {
    // nothing to undo: the merge is one transaction
  }
}

port.on('message', (request: WriterRequest | { op: 'close' }) => {
  if (request.op === 'close') {
    closed = true;
    writer.close();
    port.close();
    return;
  }
  let response: WriterResponse;
  try {
    if (request.op === 'append') {
      const stored = writer.append(request.columns);
      port.postMessage({ id: request.id, ok: true, stored } satisfies WriterResponse, [stored.buffer as ArrayBuffer]);
      // Far behind (merges kept being put off), merge now; otherwise when the waiting batches are done.
      if (writer.mergeOverdue) mergeQuietly();
      else if (writer.mergeDue) scheduleMerge();
      return;
    }
    response =
      request.op === 'prune'
        ? { id: request.id, ok: true, deleted: writer.prune(request.beforeUs, request.limit) }
        : { id: request.id, ok: true, existed: writer.deleteDevice(request.deviceId) };
  } catch (err) {
    response = { id: request.id, ok: false, message: (err as Error).message };
  }
  port.postMessage(response);
});
