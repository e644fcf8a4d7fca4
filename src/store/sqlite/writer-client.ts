import type { Worker } from 'node:worker_threads';
import { StorageUnavailableError } from '../../domain/errors.js';
import type { SqliteStoreConfig } from './config.js';
import { spawnThread } from './thread.js';
import type { CloseRequest, Envelope, WriterOp, WriterReady, WriterRequest, WriterResponse, WriterResults } from './protocol.js';

type Waiter = { resolve(r: WriterResponse): void; reject(e: Error): void };

/**
 * The main thread's side of the writer thread: starts it (again, after it died), sends requests
 * and matches responses, and keeps track of how far readers can see (read-your-writes).
 */
export class WriterClient {
  private writer: Worker | undefined;
  private starting: Promise<Worker> | undefined;
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 1;
  private closing: Promise<void> | undefined;
  /** Journal seq of the newest acknowledged batch. */
  private ackedThrough = 0;
  /** Journal seq through which compaction has moved readings where reads find them. */
  private visibleThrough = 0;
  /** The compaction request in flight for readers, and the seq it asked for. */
  private catchingUp: { through: number; done: Promise<unknown> } | undefined;

  constructor(private readonly config: SqliteStoreConfig) {}

  /** Starts the thread, which creates and migrates the file; resolves once it is ready. */
  start(): Promise<unknown> {
    return this.ensureWriter();
  }

  private ensureWriter(): Promise<Worker> {
    if (this.writer !== undefined) return Promise.resolve(this.writer);
    this.starting ??= new Promise<Worker>((resolve, reject) => {
      const worker = spawnThread('writer-thread', this.config);
      worker.once('message', (ready: WriterReady) => {
        if (!ready.ready) {
          reject(new StorageUnavailableError(`cannot open ${this.config.file}: ${ready.message}`));
          return;
        }
        // A new writer has compacted everything committed before it (journal seqs start again).
        this.ackedThrough = 0;
        this.visibleThrough = ready.compacted;
        worker.on('message', (response: WriterResponse) => this.settle(response));
        this.writer = worker;
        resolve(worker);
      });
      worker.once('error', (err) => reject(new StorageUnavailableError(`writer thread failed: ${err.message}`, { cause: err })));
      worker.once('exit', (code) => this.writerGone(worker, code));
    }).finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  /** The writer thread ended: fail what it held (none of it was acknowledged) and start afresh on next use. */
  private writerGone(worker: Worker, code: number): void {
    if (this.writer === worker) this.writer = undefined;
    const error = new StorageUnavailableError(`the SQLite writer thread stopped (exit code ${code})`);
    for (const { reject } of this.waiting.values()) reject(error);
    this.waiting.clear();
  }

  private settle(response: WriterResponse): void {
    if (response.compacted > this.visibleThrough) this.visibleThrough = response.compacted;
    const waiter = this.waiting.get(response.id);
    if (waiter === undefined) return;
    this.waiting.delete(response.id);
    waiter.resolve(response);
  }

  /** Sends one request and resolves with its operation's result; StorageUnavailableError if it failed. */
  async call<Op extends WriterOp>(
    request: Extract<WriterRequest, { op: Op }>,
    transfer: ArrayBuffer[] = [],
  ): Promise<WriterResults[Op]> {
    if (this.closing !== undefined) throw new StorageUnavailableError('the store is closed');
    const worker = await this.ensureWriter();
    const id = this.nextId++;
    const response = await new Promise<WriterResponse>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ ...request, id } satisfies Envelope, transfer);
    });
    if (!response.ok) throw new StorageUnavailableError(`SQLite write failed: ${response.message}`);
    return response.result as WriterResults[Op];
  }

  /** Notes that the batch in journal seq `seq` was acknowledged: reads must see it from now on. */
  acknowledged(seq: number): void {
    if (seq > this.ackedThrough) this.ackedThrough = seq;
  }

  /**
   * Read-your-writes: resolves once reads see every batch acknowledged so far, or undefined when
   * they already do. Acknowledged readings sit in the journal until compacted (within milliseconds
   * when the writer is idle); a read that finds some there asks the writer to compact them first,
   * sharing one request with other readers.
   */
  visible(): Promise<unknown> | undefined {
    const through = this.ackedThrough;
    if (this.visibleThrough >= through) return undefined;
    if (this.catchingUp === undefined || this.catchingUp.through < through) {
      const done = this.call({ op: 'compact', through });
      const request = { through, done };
      this.catchingUp = request;
      const clear = () => this.catchingUp === request && (this.catchingUp = undefined);
      void done.then(clear, clear);
    }
    return this.catchingUp.done;
  }

  /** Asks the thread to compact what is pending and close, and waits for it to exit. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const worker = this.writer ?? (await this.starting?.catch(() => undefined));
      if (worker === undefined) return;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage({ op: 'close' } satisfies CloseRequest);
      await exited;
    })();
    return this.closing;
  }
}
