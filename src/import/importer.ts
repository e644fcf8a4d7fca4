import type { RecordSource } from './records.js';

/**
 * Where a batch of items goes: the ingest pipeline of a store opened here, or a running Tally over
 * HTTP. Resolves once they are committed, with what became of them by index.
 */
export type BatchWriter = (items: unknown[]) => Promise<BatchOutcome>;

export interface BatchOutcome {
  readonly stored: number;
  readonly duplicates: number;
  /** Every rejected item, by its index in the batch, with the reason (naming the field). */
  readonly rejections: ReadonlyArray<{ readonly index: number; readonly reason: string }>;
}

/** A line that was not stored, and why. */
export interface RejectedLine {
  readonly line: number;
  readonly reason: string;
}

/** What an import did so far. */
export interface ImportTally {
  /** Readings read: every line that held one, good or bad (blank lines and comments are not). */
  read: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  /** The first `listRejected` rejected lines, in line order. */
  readonly firstRejected: RejectedLine[];
  /** Every line up to this one is settled (committed, a duplicate, or rejected). */
  settledThroughLine: number;
}

export interface ImportOptions {
  /** Readings per write (one transaction each, or part of one). */
  readonly batchSize: number;
  /** Rejected lines to keep with their reason; the rest are only counted. */
  readonly listRejected: number;
  /** Told after each batch commits. */
  readonly onBatch?: (tally: Readonly<ImportTally>) => void;
  /** Stops reading when aborted: the batch being read is written, then the import returns. */
  readonly signal?: AbortSignal;
}

interface Batch {
  readonly items: unknown[];
  /** Line of each item. */
  readonly lines: number[];
  /** Lines that could not be read, in line order. */
  readonly unreadable: RejectedLine[];
  lastLine: number;
}

const emptyBatch = (): Batch => ({ items: [], lines: [], unreadable: [], lastLine: 0 });

/**
 * Writes a file's records through `write` (the ingest pipeline, the one way into the store: the
 * same checks, dedupe and retention as every surface), a batch at a time: one batch is read while the previous
 * one commits, so memory holds two batches whatever the file's size. Rejects with the pipeline's
 * error (store unavailable, server gone...) and then `tally.settledThroughLine` says how far the file is done:
 * first write wins, so running the import again is safe.
 */
export async function importRecords(source: RecordSource, writeBatch: BatchWriter, options: ImportOptions): Promise<ImportTally> {
  const tally: ImportTally = { read: 0, accepted: 0, duplicates: 0, rejected: 0, firstRejected: [], settledThroughLine: 0 };
  const reject = (rejected: RejectedLine[]) => {
    tally.rejected += rejected.length;
    for (const r of rejected) if (tally.firstRejected.length < options.listRejected) tally.firstRejected.push(r);
  };
  const write = async (batch: Batch) => {
    const outcome = await writeBatch(batch.items);
    const rejected = [...batch.unreadable];
    for (const { index, reason } of outcome.rejections) rejected.push({ line: batch.lines[index]!, reason });
    rejected.sort((a, b) => a.line - b.line);
    tally.accepted += outcome.stored;
    tally.duplicates += outcome.duplicates;
    reject(rejected);
    tally.settledThroughLine = batch.lastLine;
    options.onBatch?.(tally);
  };

  let inFlight: Promise<void> | undefined;
  let batch = emptyBatch();
  const send = async () => {
    const full = batch;
    batch = emptyBatch();
    await inFlight;
    inFlight = write(full);
    // Without this, a rejection before the next await would be reported as unhandled.
    inFlight.catch(() => undefined);
  };
  for await (const records of source) {
    for (const record of records) {
      tally.read++;
      batch.lastLine = record.line;
      if (record.error !== undefined) batch.unreadable.push({ line: record.line, reason: record.error });
      else {
        batch.items.push(record.item);
        batch.lines.push(record.line);
      }
    }
    if (batch.items.length >= options.batchSize) await send();
    if (options.signal?.aborted) break;
  }
  if (batch.lastLine > 0) await send();
  await inFlight;
  return tally;
}
