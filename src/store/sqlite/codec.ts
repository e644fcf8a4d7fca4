import { brotliCompressSync, brotliDecompressSync, constants, deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * How a sealed chunk's columns are compressed (its second byte says which, so a file may hold
 * several). Calls are synchronous: they run on the writer and reader threads, never on the event
 * loop that parses requests. `bench/chunk-codec.ts` measures each on the reads workload's chunks.
 */
export const Codec = { None: 0, Deflate: 1, Brotli: 2 } as const;
export type Codec = (typeof Codec)[keyof typeof Codec];

/** The codec new chunks are sealed with (chosen by bench/chunk-codec.ts: BENCHMARKS.md). */
export const DEFAULT_CODEC: Codec = Codec.Deflate;

/**
 * A chunk's columns are at most a few tens of KiB, and most of a small chunk's cost is setting the
 * compressor up: a 16 KiB window and smaller hash tables set up in about half the time of zlib's
 * defaults, and level 2 compresses the repeats of columns (steady deltas, counts, similar payloads)
 * almost as well as 6 at a third of the time (bench/chunk-codec.ts; BENCHMARKS.md). Inflating
 * needs no options: its default window takes any smaller one.
 */
const DEFLATE_OPTIONS = { level: 2, windowBits: 14, memLevel: 6 };

const BROTLI_OPTIONS = {
  params: {
    [constants.BROTLI_PARAM_QUALITY]: 5,
    // A chunk's columns are a few KiB: a small window costs less to set up on both sides.
    [constants.BROTLI_PARAM_LGWIN]: 16,
  },
};

export function compress(codec: Codec, bytes: Uint8Array): Buffer {
  switch (codec) {
    case Codec.None:
      return Buffer.from(bytes);
    case Codec.Deflate:
      return deflateRawSync(bytes, DEFLATE_OPTIONS);
    case Codec.Brotli:
      return brotliCompressSync(bytes, BROTLI_OPTIONS);
  }
}

export function decompress(codec: Codec, bytes: Uint8Array): Buffer {
  switch (codec) {
    case Codec.None:
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    case Codec.Deflate:
      return inflateRawSync(bytes);
    case Codec.Brotli:
      return brotliDecompressSync(bytes);
    default:
      throw new Error(`corrupt chunk: unknown codec ${codec as number}`);
  }
}
