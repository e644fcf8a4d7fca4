import type { SqliteReads } from './reads.js';

/** The queries a reader thread answers: SqliteReads' methods, called by name with their arguments. */
export type ReadOp = 'getDevice' | 'listDevices' | 'deviceReadings' | 'aggregate' | 'listRecords' | 'listKeys' | 'audit' | 'backup';

/** `journal`: read everything committed, the journal's readings not yet compacted included (SqliteReads.withJournal). */
export type ReadRequest = {
  [Op in ReadOp]: { readonly id: number; readonly op: Op; readonly args: Parameters<SqliteReads[Op]>; readonly journal: boolean };
}[ReadOp];

export type ReadResult<Op extends ReadOp> = ReturnType<SqliteReads[Op]>;

/** An error that crosses the thread boundary by name, so the caller can rebuild its class. */
export interface ReadFailure {
  readonly name: string;
  readonly message: string;
}

export type ReadResponse =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: ReadFailure };

/** The first message of a reader: its connection is open, or could not be. */
export type ReaderReady = { readonly ready: true } | { readonly ready: false; readonly message: string };
