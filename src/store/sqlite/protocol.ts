import type { ReadingColumns } from './columns.js';

/** Messages between the SqliteStore (main thread) and its writer thread. */
export type WriterRequest =
  | { readonly op: 'append'; readonly id: number; readonly columns: ReadingColumns }
  /** Compact until readers see everything through journal seq `through`. */
  | { readonly op: 'compact'; readonly id: number; readonly through: number }
  | { readonly op: 'deleteDevice'; readonly id: number; readonly deviceId: string }
  | { readonly op: 'prune'; readonly id: number; readonly beforeUs: number; readonly limit: number };

/**
 * Every message from the writer says how far compaction has got (`compacted`: readers see every
 * reading acknowledged through that journal seq). Id 0 is a notice after a background compaction.
 */
export type WriterResponse =
  | {
      readonly id: number;
      readonly ok: true;
      readonly compacted: number;
      readonly stored?: Uint8Array;
      /** Of an append: the journal seq holding its readings. */
      readonly seq?: number;
      readonly existed?: boolean;
      readonly deleted?: number;
    }
  | { readonly id: number; readonly ok: false; readonly compacted: number; readonly message: string };

/** The first message a writer sends: the database is open, migrated and compacted, or could not be. */
export type WriterReady = { readonly ready: true; readonly compacted: number } | { readonly ready: false; readonly message: string };
