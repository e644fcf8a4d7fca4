/**
 * Entry point of the writer thread. Commits (and their fsyncs) run here so that the event loop
 * parsing requests never blocks on the disk.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SqliteStoreConfig } from './config.js';
import type { CloseRequest, Envelope, WriterReady, WriterResponse } from './protocol.js';
import { SqliteWriter } from './writer.js';

const port = parentPort!;
let writer: SqliteWriter;
try {
  writer = new SqliteWriter(workerData as SqliteStoreConfig);
  port.postMessage({ ready: true, compacted: writer.compactedThrough } satisfies WriterReady);
} catch (err) {
  port.postMessage({ ready: false, message: (err as Error).message } satisfies WriterReady);
  process.exit(1);
}

/**
 * Quiet time after the last append before the backlog is compacted, so readers of an idle store
 * never wait. Long enough that a short stall under load (a GC pause, a busy core) does not start a
 * small, costly round: under load, rounds start at the threshold and readers ask for their own.
 */
const IDLE_MS = 100;

let compactionScheduled = false;
let closed = false;

/**
 * One compaction step, without failing the caller: a failed step leaves the journal as it was.
 * Returns whether it succeeded.
 */
function compactQuietly(): boolean {
  const before = writer.compactedThrough;
  let ok = true;
  try {
    writer.compactStep();
  } catch {
    // nothing to undo: each compaction step is one transaction; the next append or the idle
    // timer tries again (not at once: a full disk would make that a busy loop)
    ok = false;
  }
  if (writer.compactedThrough !== before) {
    port.postMessage({ id: 0, ok: true, compacted: writer.compactedThrough, result: null } satisfies WriterResponse);
  }
  return ok;
}

/**
 * Runs the next compaction step after the batches already waiting on the port, and again after
 * each step while a round is under way: appends wait for one slice at most, never a round.
 */
function scheduleCompaction(): void {
  if (compactionScheduled) return;
  compactionScheduled = true;
  setImmediate(() => {
    compactionScheduled = false;
    if (closed) return;
    if (!(writer.compacting || writer.backlog >= writer.compactRows)) return;
    if (compactQuietly() && writer.compacting) scheduleCompaction();
  });
}

let sealScheduled = false;

/**
 * Runs the next sealing step after the batches already waiting on the port, and again after each
 * step while there is more to seal and nothing to compact: only while the writer is idle, or the
 * seal backlog is past its bound (then a step follows each commit). A failed step is retried by
 * the idle timer, not at once (a full disk would make that a busy loop).
 */
function scheduleSeal(): void {
  if (sealScheduled) return;
  sealScheduled = true;
  setImmediate(() => {
    sealScheduled = false;
    if (closed || writer.sealBacklog === 0) return;
    // Past its bound, sealing keeps up with commits; otherwise it waits until nothing is left to compact.
    if (!writer.sealDue && (writer.backlog > 0 || writer.compacting)) return;
    try {
      writer.sealStep();
    } catch {
      return;
    }
    if (writer.sealDue || writerIdle) scheduleSeal();
  });
}

/** No append for IDLE_MS. */
let writerIdle = false;

// One step at a time, like any round: an append arriving meanwhile waits for one slice at most.
// Back every IDLE_MS while anything is pending, or a step failed. Once nothing is left to
// compact, the text chunks waiting are sealed, a step at a time.
const idle = setTimeout(() => {
  if (closed) return;
  writerIdle = true;
  if (writer.backlog > 0 || writer.compacting) {
    if (compactQuietly()) scheduleCompaction();
    idle.refresh();
    return;
  }
  if (writer.sealBacklog > 0) {
    scheduleSeal();
    idle.refresh();
  }
}, IDLE_MS);
idle.unref();

/**
 * Quiet time after the last append before the file is settled (free pages given back, the WAL
 * checkpointed away): long enough that a pause between bursts does not give back what the next
 * burst would take again.
 */
const SETTLE_MS = 10_000;
const settle = setTimeout(() => {
  if (closed) return;
  if (writer.backlog > 0 || writer.compacting || writer.sealBacklog > 0) {
    settle.refresh();
    return;
  }
  try {
    writer.settle();
  } catch {
    settle.refresh(); // a full disk: tried again later
  }
}, SETTLE_MS);
settle.unref();


port.on('message', (request: Envelope | CloseRequest) => {
  if (request.op === 'close') {
    closed = true;
    clearTimeout(idle);
    clearTimeout(settle);
    writer.close();
    port.close();
    return;
  }
  let response: WriterResponse;
  try {
    switch (request.op) {
      case 'append': {
        const result = writer.append(request.columns);
        port.postMessage({ id: request.id, ok: true, compacted: writer.compactedThrough, result } satisfies WriterResponse, [
          result.stored.buffer as ArrayBuffer,
        ]);
        // Far behind (compactions kept being put off), compact now; otherwise when the waiting batches are done.
        if (writer.backlog >= 3 * writer.compactRows) compactQuietly();
        else if (writer.compacting || writer.backlog >= writer.compactRows) scheduleCompaction();
        if (writer.sealDue) scheduleSeal(); // after the compaction step, if any: it may leave more to seal
        writerIdle = false;
        idle.refresh();
        settle.refresh();
        return;
      }
      case 'compact':
        while (writer.compactedThrough < request.through && (writer.backlog > 0 || writer.compacting)) writer.compactStep();
        response = { id: request.id, ok: true, compacted: writer.compactedThrough, result: {} };
        break;
      case 'prune':
        response = { id: request.id, ok: true, compacted: writer.compactedThrough, result: { deleted: writer.prune(request.beforeUs, request.limit) } };
        break;
      case 'settings':
        response = { id: request.id, ok: true, compacted: writer.compactedThrough, result: writer.settings() };
        break;
      case 'probe':
        writer.probe(request.waitMs);
        response = { id: request.id, ok: true, compacted: writer.compactedThrough, result: {} };
        break;
      case 'keys':
        response = { id: request.id, ok: true, compacted: writer.compactedThrough, result: { changed: writer.keys.write(request.change) } };
        break;
      case 'deleteDevice':
        response = { id: request.id, ok: true, compacted: writer.compactedThrough, result: { existed: writer.deleteDevice(request.deviceId) } };
        break;
    }
  } catch (err) {
    response = { id: request.id, ok: false, compacted: writer.compactedThrough, message: (err as Error).message };
  }
  port.postMessage(response);
});
