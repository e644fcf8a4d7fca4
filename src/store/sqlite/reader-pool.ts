import type { Worker } from 'node:worker_threads';
import { InvalidCursorError, StorageUnavailableError } from '../../domain/errors.js';
import type { ReaderReady, ReadFailure, ReadOp, ReadRequest, ReadResponse, ReadResult } from './reader-protocol.js';
import type { SqliteReads } from './reads.js';
import { spawnThread } from './thread.js';

interface Reader {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  /** Requests sent and not yet answered. */
  readonly waiting: Map<number, { resolve(value: unknown): void; reject(error: Error): void }>;
}

/** The error a reader reported, as the class the contract names (a bad cursor stays a bad cursor). */
function rebuild(failure: ReadFailure): Error {
  if (failure.name === 'InvalidCursorError') return new InvalidCursorError(failure.message);
  return new StorageUnavailableError(`SQLite read failed: ${failure.message}`);
}

/**
 * Reader threads, each with its own read-only WAL connection, taking queries by least work in
 * hand. A thread that dies fails only its own requests and is replaced on the next query.
 */
export class ReaderPool {
  private readonly readers: Array<Reader | undefined>;
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly file: string,
    size: number,
  ) {
    this.readers = new Array<Reader | undefined>(size).fill(undefined);
  }

  /** Starts every reader; resolves once all have their connection open. */
  async start(): Promise<void> {
    await Promise.all(this.readers.map((_, slot) => this.reader(slot).ready));
  }

  call<Op extends ReadOp>(op: Op, ...args: Parameters<SqliteReads[Op]>): Promise<ReadResult<Op>> {
    return this.send(op, args, false);
  }

  /** A query over everything committed, the journal's readings not yet compacted included: for when the writer cannot compact them. */
  callWithJournal<Op extends ReadOp>(op: Op, ...args: Parameters<SqliteReads[Op]>): Promise<ReadResult<Op>> {
    return this.send(op, args, true);
  }

  private async send<Op extends ReadOp>(op: Op, args: Parameters<SqliteReads[Op]>, journal: boolean): Promise<ReadResult<Op>> {
    if (this.closed) throw new StorageUnavailableError('the store is closed');
    const reader = this.reader(this.leastBusy());
    await reader.ready;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      reader.waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      reader.worker.postMessage({ id, op, args, journal } as ReadRequest);
    });
  }

  private leastBusy(): number {
    let best = 0;
    for (let slot = 1; slot < this.readers.length; slot++) {
      if ((this.readers[slot]?.waiting.size ?? 0) < (this.readers[best]?.waiting.size ?? 0)) best = slot;
    }
    return best;
  }

  private reader(slot: number): Reader {
    const existing = this.readers[slot];
    if (existing !== undefined) return existing;
    const worker = spawnThread('reader-thread', { file: this.file });
    const waiting: Reader['waiting'] = new Map();
    const ready = new Promise<void>((resolve, reject) => {
      worker.once('message', (message: ReaderReady) => {
        if (!message.ready) return reject(new StorageUnavailableError(`cannot open ${this.file} for reading: ${message.message}`));
        worker.on('message', (response: ReadResponse) => {
          const waiter = waiting.get(response.id);
          if (waiter === undefined) return;
          waiting.delete(response.id);
          if (response.ok) waiter.resolve(response.result);
          else waiter.reject(rebuild(response.error));
        });
        resolve();
      });
    });
    ready.catch(() => undefined); // awaited by every caller; never an unhandled rejection
    worker.once('error', () => undefined); // the exit that follows fails the requests
    worker.once('exit', (code) => {
      if (this.readers[slot]?.worker === worker) this.readers[slot] = undefined;
      const error = new StorageUnavailableError(`a SQLite reader thread stopped (exit code ${code})`);
      for (const waiter of waiting.values()) waiter.reject(error);
      waiting.clear();
    });
    const reader = { worker, ready, waiting };
    this.readers[slot] = reader;
    return reader;
  }

  /** Ends every reader at once, failing what they were asked (a maintenance job at shutdown). */
  async terminate(): Promise<void> {
    this.closed = true;
    const readers = this.readers.filter((r): r is Reader => r !== undefined);
    this.readers.fill(undefined);
    await Promise.all(readers.map(({ worker }) => worker.terminate()));
  }

  /** Lets every reader finish what it was asked, then ends them. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    const readers = this.readers.filter((r): r is Reader => r !== undefined);
    this.readers.fill(undefined);
    await Promise.all(
      readers.map(async ({ worker, waiting }) => {
        while (waiting.size > 0) await new Promise((resolve) => setTimeout(resolve, 5));
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        worker.postMessage({ op: 'close' });
        await exited;
      }),
    );
  }
}
