/**
 * A chunk's readings, whatever form its `data` takes: text (a string: chunk-text.ts, the form of a
 * device's newest chunk, which takes appends, and of every chunk written before sealing existed)
 * or sealed (a BLOB: chunk-sealed.ts). SQLite columns are typeless, so the value's type says which.
 * Everything that reads chunks goes through these functions.
 */
import { decodeSealed, decodeSealedTail, isSealed, sealedInstants } from './chunk-sealed.js';
import { decodeText, decodeTextTail, textHas, textInstants, type ChunkReading } from './chunk-text.js';

export { canonicalUtcDigits, chunkLine, integerText, type ChunkReading } from './chunk-text.js';
export { encodeSealed, isSealed, sealLines, sealText } from './chunk-sealed.js';

/**
 * New chunks are cut at this many bytes of text, and text chunks sealed together stop at it: what a
 * point lookup or a query decodes per chunk.
 */
export const SEALED_CHUNK_BYTES = 16_384;

/** A chunk's `data` column as SQLite returns it. */
export type ChunkData = string | Uint8Array;

/**
 * Every reading of a chunk, in its (timestamp) order. `timestampTexts: false` leaves out the texts
 * written out again from the instant (canonical UTC ones: null), which an aggregate never reads.
 */
export function decodeChunk(data: ChunkData, { timestampTexts = true } = {}): ChunkReading[] {
  return isSealed(data) ? decodeSealed(data, timestampTexts) : decodeText(data, timestampTexts);
}

/**
 * The readings of a chunk at or after `fromUs`, newest first: a newest-first listing needs only
 * the tail of most chunks.
 */
export function decodeChunkTail(data: ChunkData, fromUs: number): ChunkReading[] {
  return isSealed(data) ? decodeSealedTail(data, fromUs) : decodeTextTail(data, fromUs);
}

/** Whether a chunk holds a reading at `tsUs`. */
export function chunkHas(data: ChunkData, tsUs: number): boolean {
  return isSealed(data) ? sealedInstants(data).includes(tsUs) : textHas(data, tsUs);
}

/** The timestamps of a chunk's readings, in its order, nothing else decoded. */
export function chunkInstants(data: ChunkData): ArrayLike<number> & Iterable<number> {
  return isSealed(data) ? sealedInstants(data) : textInstants(data);
}
