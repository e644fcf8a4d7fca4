import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

/**
 * The bytes of a file to import, or of standard input (`-`), decompressed when they are gzip. Gzip
 * is recognised by its magic bytes rather than by the name, so `data.csv.gz`, a gzip stream on
 * standard input and a mis-named file all read the same.
 */
export interface ImportInput {
  /** The path, or `standard input`. */
  readonly name: string;
  /** Decompressed bytes, in chunks of the stream's size: never the whole file. */
  readonly chunks: AsyncIterable<Buffer>;
  /** Bytes of the file itself (compressed, if it is), when known: the progress bar's 100%. */
  readonly totalBytes: number | undefined;
  /** Bytes of the file itself read so far. */
  bytesRead(): number;
}

export class InputError extends Error {}

const GZIP_MAGIC = [0x1f, 0x8b];

export async function openInput(path: string, stdin: Readable = process.stdin): Promise<ImportInput> {
  let raw: Readable;
  let totalBytes: number | undefined;
  let name: string;
  if (path === '-') {
    raw = stdin;
    name = 'standard input';
  } else {
    try {
      const info = await stat(path);
      if (!info.isFile()) throw new InputError(`${path} is not a file`);
      totalBytes = info.size;
    } catch (err) {
      if (err instanceof InputError) throw err;
      throw new InputError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    raw = createReadStream(path, { highWaterMark: 256 * 1024 });
    name = path;
  }
  let read = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of raw) {
      read += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
  }
  return { name, totalBytes, bytesRead: () => read, chunks: decompressed(counted()) };
}

/** The chunks as they are, or gunzipped when the first bytes are gzip's magic. */
async function* decompressed(chunks: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  const first = await chunks.next();
  if (first.done) return;
  const head = first.value;
  if (head.length >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) {
    async function* whole(): AsyncGenerator<Buffer> {
      yield head;
      yield* chunks;
    }
    const gunzip = createGunzip();
    const source = Readable.from(whole());
    source.on('error', (err) => gunzip.destroy(err));
    for await (const chunk of source.pipe(gunzip)) yield chunk as Buffer;
    return;
  }
  yield head;
  yield* chunks;
}
