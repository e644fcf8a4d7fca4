import type { ReadingColumns } from './columns.js';

/** Messages between the SqliteStore (main thread) and its writer thread. */
export type WriterRequest =
  | { readonly op: 'append'; readonly id: number; readonly columns: ReadingColumns }
  | { readonly op: 'deleteDevice'; readonly id: number; readonly deviceId: string }
  | { readonly op: 'prune'; readonly id: number; readonly beforeUs: number; readonly limit: number };

export type WriterResponse =
  | { readonly id: number; readonly ok: true; readonly stored?: Uint8Array; readonly existed?: boolean; readonly deleted?: number }
  | { readonly id: number; readonly ok: false; readonly message: string };

/** The first message a writer sends: the database is open and migrated, or could not be. */
export type WriterReady = { readonly ready: true } | { readonly ready: false; readonly message: string };
