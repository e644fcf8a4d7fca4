import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { RetentionWindow } from '../../domain/retention.js';
import type { EpochUnit } from '../../domain/timestamp.js';
import { GroupCommitBatcher } from '../../ingest/batcher.js';
import type { Precision } from '../../ingest/line-protocol.js';
import { lineProtocolShape } from '../../ingest/line-protocol-mapping.js';
import { IngestPipeline } from '../../ingest/pipeline.js';
import type { ReadingShape } from '../../ingest/shape.js';
import { csvRecords, csvShape, CsvHeaderError } from '../../import/csv.js';
import { importRecords, type BatchWriter, type ImportTally } from '../../import/importer.js';
import { RemoteImportError, remoteWriter } from '../../import/http-writer.js';
import { InputError, openInput, type ImportInput } from '../../import/input.js';
import { lineProtocolRecords } from '../../import/line-protocol.js';
import { linesOf } from '../../import/lines.js';
import { ndjsonRecords, ndjsonShape } from '../../import/ndjson.js';
import { ProgressLine, n } from '../../import/progress.js';
import { MAX_LINE_CHARS, type RecordSource } from '../../import/records.js';
import { openStore, type StoreConfig } from '../../store/index.js';
import type { TelemetryStore } from '../../store/types.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { SETTING_OPTIONS, settingArgs } from './args.js';

/**
 * `tally import <file>|-`: readings from an NDJSON, CSV or line-protocol file into the configured
 * store, through the ingest pipeline every surface uses (same checks, dedupe, retention).
 *
 * It opens the store itself, as `tally serve` does. A SQLite file has one writer process: while a
 * server runs on the same file the import stops at once with a message saying so (stop the server,
 * or use --url). PostgreSQL takes many writers: import while nodes run. With `--url` it posts the
 * batches to that running Tally's POST /v1/readings instead (its pipeline, its store).
 *
 * Exit codes: 0 every reading was stored or already there; 1 the whole file was read but some lines
 * were rejected (the others are stored); 2 nothing was imported: a bad command line or setting, or
 * a file that cannot be read; 3 stopped part way (the store failed, the file broke off): what was
 * committed stays, and a re-run reports it as duplicates; 130 interrupted (Ctrl-C), likewise.
 */

export const IMPORT_USAGE = 'tally import <file>|- [--format ndjson|csv|lp] [--precision ns|us|ms|s] [--url http://host:port | store flags]';

export const IMPORT_FORMATS = ['ndjson', 'csv', 'lp'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

/** Readings per write: large enough to fill a transaction, small enough to hold two in memory. */
const BATCH = 5000;
/** Rejected lines listed in the summary, with their reason; the rest are counted. */
const LISTED_REJECTIONS = 20;

const EXTENSIONS: Record<string, ImportFormat> = { ndjson: 'ndjson', jsonl: 'ndjson', csv: 'csv', lp: 'lp', line: 'lp', influx: 'lp' };

class UsageError extends Error {}

/** The format a name says, from its extension (under a .gz). */
export function formatOfName(path: string): ImportFormat | undefined {
  const name = basename(path).toLowerCase().replace(/\.gz$/, '');
  const dot = name.lastIndexOf('.');
  return dot < 0 ? undefined : EXTENSIONS[name.slice(dot + 1)];
}

interface ImportRequest {
  readonly path: string;
  readonly format: ImportFormat;
  readonly precision: string | undefined;
  /** A running Tally to post to, instead of opening the store here. */
  readonly url: string | undefined;
  readonly config: Config;
}

function parseRequest(argv: string[], env: NodeJS.ProcessEnv): ImportRequest {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...SETTING_OPTIONS, format: { type: 'string' }, precision: { type: 'string' }, url: { type: 'string' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { positionals } = parsed;
  const values = parsed.values as Record<string, string | undefined>;
  if (positionals.length !== 1) throw new UsageError(`name one file to import (or - for standard input), got ${positionals.length}`);
  const path = positionals[0]!;
  const asked = values.format;
  if (asked !== undefined && !(IMPORT_FORMATS as readonly string[]).includes(asked)) {
    throw new UsageError(`--format must be one of ${IMPORT_FORMATS.join(', ')}, got ${JSON.stringify(asked)}`);
  }
  const format = (asked as ImportFormat | undefined) ?? (path === '-' ? undefined : formatOfName(path));
  if (format === undefined) {
    throw new UsageError(`cannot tell the format of ${path === '-' ? 'standard input' : path} from its name (.ndjson, .jsonl, .csv, .lp, optionally .gz): pass --format ndjson, csv or lp`);
  }
  const precision = values.precision;
  const units = format === 'lp' ? ['ns', 'us', 'ms', 's'] : ['s', 'ms', 'us'];
  if (precision !== undefined && !units.includes(precision)) {
    throw new UsageError(`--precision for ${format} must be one of ${units.join(', ')}, got ${JSON.stringify(precision)}`);
  }
  return { path, format, precision, url: values.url, config: loadConfig(env, settingArgs(values)) };
}

function sourceOf(request: ImportRequest, input: ImportInput, untimed: { count: number }): { source: RecordSource; shape: ReadingShape } {
  const epoch = request.precision as EpochUnit | undefined;
  switch (request.format) {
    case 'ndjson':
      return { source: ndjsonRecords(linesOf(input.chunks, MAX_LINE_CHARS)), shape: ndjsonShape(epoch) };
    case 'csv':
      return { source: csvRecords(input.chunks, epoch), shape: csvShape(epoch) };
    case 'lp': {
      const precision = (request.precision ?? 'ns') as Precision;
      return { source: lineProtocolRecords(linesOf(input.chunks, MAX_LINE_CHARS), request.config.lineProtocol, precision, untimed), shape: lineProtocolShape };
    }
  }
}

export function describeStore(store: StoreConfig): string {
  return store.backend === 'postgres' ? store.postgres.display : `sqlite:${store.sqlite.file}`;
}

/** The store, or the reason it cannot be opened, in words a user can act on. */
async function open(config: Config): Promise<TelemetryStore> {
  try {
    return await openStore(config.store);
  } catch (err) {
    const message = (err as Error).message;
    if (/in use by another Tally/.test(message)) {
      throw new ImportStopped(
        `${message}: a SQLite file takes one writer process, so stop the server first, or send the file through it: tally import --url http://<its address>`,
      );
    }
    throw new ImportStopped(`cannot open the store ${describeStore(config.store)}: ${message}`);
  }
}

class ImportStopped extends Error {}

/** Where the batches go, and what to close at the end. */
interface Destination {
  readonly name: string;
  readonly write: BatchWriter;
  close(): Promise<void>;
}

/** The configured store, opened here, behind its own batcher and ingest pipeline. */
async function localStore(config: Config, shape: ReadingShape): Promise<Destination> {
  const store = await open(config);
  const batcher = new GroupCommitBatcher(store, { queueLimit: config.queueLimit, maxBatchReadings: config.maxBatchReadings });
  const retention = config.retention && new RetentionWindow(config.retention.us, config.retention.label);
  const pipeline = new IngestPipeline(batcher, { retention });
  return {
    name: describeStore(config.store),
    write: async (items) => {
      const outcome = await pipeline.write(items, shape);
      return { stored: outcome.stored, duplicates: outcome.duplicates, rejections: outcome.rejections.map((r) => ({ index: r.index, reason: r.error.message })) };
    },
    close: async () => {
      await batcher.close();
      await store.close();
    },
  };
}

/** A running Tally, over HTTP (its own pipeline and store). */
function remote(request: ImportRequest): Destination {
  // The key from the environment, never a flag: a flag's value shows in the process list.
  const key = process.env.TALLY_API_KEY || undefined;
  const write = remoteWriter(request.url!, {
    precision: request.format === 'lp' ? undefined : (request.precision as EpochUnit | undefined),
    lineProtocol: request.format === 'lp',
    ...(key === undefined ? {} : { key }),
  });
  return { name: new URL(request.url!).origin, write, close: async () => {} };
}

export interface ImportStreams {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WriteStream;
}

function summaryText(name: string, format: ImportFormat, store: string, tally: Readonly<ImportTally>, seconds: number, untimed: number): string {
  const lines = [
    `tally import: ${name} (${format}) into ${store}`,
    `read ${n(tally.read)} readings: ${n(tally.accepted)} accepted, ${n(tally.duplicates)} duplicates, ${n(tally.rejected)} rejected ` +
      `(${seconds.toFixed(1)} s, ${n(Math.round(tally.read / Math.max(seconds, 0.001)))} readings/s)`,
  ];
  if (untimed > 0) lines.push(`warning: ${n(untimed)} line${untimed === 1 ? '' : 's'} had no timestamp and got the import's time: importing them again stores them again`);
  if (tally.rejected > 0) {
    const shown = tally.firstRejected.length;
    lines.push(`rejected lines${shown < tally.rejected ? ` (the first ${shown})` : ''}:`);
    for (const r of tally.firstRejected) lines.push(`  line ${r.line}: ${r.reason}`);
    if (shown < tally.rejected) lines.push(`  and ${n(tally.rejected - shown)} more`);
  }
  return `${lines.join('\n')}\n`;
}

/** Runs the command; resolves with the exit code (see the top of this file). */
export async function importCommand(argv: string[], env: NodeJS.ProcessEnv = process.env, io: ImportStreams = process): Promise<number> {
  let request: ImportRequest;
  let input: ImportInput;
  try {
    request = parseRequest(argv, env);
    input = await openInput(request.path);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`tally import: ${err.message}\nusage: ${IMPORT_USAGE}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.stderr.write(`tally import: invalid configuration: ${err.message}\n`);
      return 2;
    }
    if (err instanceof InputError) {
      io.stderr.write(`tally import: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const { config } = request;
  const untimed = { count: 0 };
  const { source, shape } = sourceOf(request, input, untimed);
  let destination: Destination;
  try {
    destination = request.url === undefined ? await localStore(config, shape) : remote(request);
  } catch (err) {
    if (!(err instanceof ImportStopped) && !(err instanceof RemoteImportError)) throw err;
    io.stderr.write(`tally import: ${err.message}\n`);
    return err instanceof RemoteImportError ? 2 : 3;
  }
  const progress = new ProgressLine(io.stderr, () => ({ read: input.bytesRead(), total: input.totalBytes }));
  // Ctrl-C: finish the batch in hand, commit it, and say how far the file got. A second one quits.
  const interrupt = new AbortController();
  const onSigint = () => {
    if (interrupt.signal.aborted) process.exit(130);
    interrupt.abort();
  };
  process.on('SIGINT', onSigint);
  const started = Date.now();
  let tally: ImportTally | undefined;
  let failure: Error | undefined;
  const partial: { current?: Readonly<ImportTally> } = {};
  try {
    tally = await importRecords(source, destination.write, {
      batchSize: BATCH,
      listRejected: LISTED_REJECTIONS,
      signal: interrupt.signal,
      onBatch: (t) => {
        partial.current = t;
        progress.update(t);
      },
    });
  } catch (err) {
    failure = err as Error;
  } finally {
    process.off('SIGINT', onSigint);
    progress.clear();
    try {
      await destination.close();
    } catch (err) {
      failure ??= err as Error;
    }
  }
  const seconds = (Date.now() - started) / 1000;
  if (failure !== undefined) {
    if (failure instanceof CsvHeaderError) {
      io.stderr.write(`tally import: ${input.name}: ${failure.message}; nothing was imported\n`);
      return 2;
    }
    const done = partial.current;
    if (done !== undefined) io.stdout.write(summaryText(input.name, request.format, destination.name, done, seconds, untimed.count));
    io.stderr.write(
      `tally import: stopped: ${failure.message}\n` +
        `tally import: ${done === undefined ? 'nothing was committed' : `lines 1 to ${done.settledThroughLine} are done`}; ` +
        'run the same import again once the cause is fixed: what is stored comes back as duplicates\n',
    );
    return 3;
  }
  io.stdout.write(summaryText(input.name, request.format, destination.name, tally!, seconds, untimed.count));
  if (interrupt.signal.aborted) {
    io.stderr.write(`tally import: interrupted after line ${tally!.settledThroughLine}: run the same import again to finish (what is stored comes back as duplicates)\n`);
    return 130;
  }
  return tally!.rejected > 0 ? 1 : 0;
}
