/**
 * What every import format yields: per line of the file, either an item for the ingest pipeline
 * (read through the format's ReadingShape) or the reason the line could not even be read.
 */
export type ImportRecord =
  | { readonly line: number; readonly item: unknown; readonly error?: undefined }
  | { readonly line: number; readonly error: string };

/** A format's records, a chunk of the file at a time. */
export type RecordSource = AsyncIterable<ImportRecord[]>;

/** Longest line or CSV record read: a 64 KiB payload plus generous room for the rest (as /v1's NDJSON). */
export const MAX_LINE_CHARS = 256 * 1024;

export const tooLong = `the line is longer than ${MAX_LINE_CHARS.toLocaleString('en-US')} characters`;
