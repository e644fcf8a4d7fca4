import type { KeyWrite } from '../types.js';
import type { ReadingColumns } from './columns.js';

/**
 * Messages between the SqliteStore (main thread) and its writer thread: a request per operation,
 * and for each operation the result its response carries.
 */
export type WriterRequest =
  | { readonly op: 'append'; readonly columns: ReadingColumns }
  /** Compact until readers see everything through journal seq `through`. */
  | { readonly op: 'compact'; readonly through: number }
  | { readonly op: 'deleteDevice'; readonly deviceId: string }
  | { readonly op: 'prune'; readonly beforeUs: number; readonly limit: number }
  /** The durability settings the writer's connection is actually running with. */
  | { readonly op: 'settings' }
  /** Can a write start now? Takes the write lock (waiting at most `waitMs`) and rolls back. */
  | { readonly op: 'probe'; readonly waitMs: number }
  | { readonly op: 'keys'; readonly change: KeyWrite };

export type WriterOp = WriterRequest['op'];

/** What each operation answers. */
export interface WriterResults {
  /** A flag per reading (1 stored, 0 duplicate), and the journal seq that holds the batch. */
  readonly append: { readonly stored: Uint8Array; readonly seq: number };
  readonly compact: Record<string, never>;
  readonly deleteDevice: { readonly existed: boolean };
  readonly prune: { readonly deleted: number };
  readonly settings: WriterSettings;
  readonly probe: Record<string, never>;
  readonly keys: { readonly changed: boolean };
}

/** Read back from the writer's connection, not from the configuration it was given. */
export interface WriterSettings {
  readonly synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';
  readonly journalMode: string;
}

/** A request as posted: with the id its response will carry. */
export type Envelope = WriterRequest & { readonly id: number };

/** Sent to end the thread: it compacts what is pending, closes the database and exits. */
export interface CloseRequest {
  readonly op: 'close';
}

/**
 * Every message from the writer says how far compaction has got (`compacted`: readers see every
 * reading acknowledged through that journal seq). Id 0 is a notice after a background compaction.
 */
export type WriterResponse =
  | { readonly id: number; readonly ok: true; readonly compacted: number; readonly result: WriterResults[WriterOp] | null }
  | { readonly id: number; readonly ok: false; readonly compacted: number; readonly message: string };

/** The first message a writer sends: the database is open, migrated and compacted, or could not be. */
export type WriterReady = { readonly ready: true; readonly compacted: number } | { readonly ready: false; readonly message: string };
