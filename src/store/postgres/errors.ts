import pg from 'pg';
import { StorageUnavailableError } from '../../domain/errors.js';

/**
 * What a node-postgres failure means to Tally. The server's SQLSTATE says which failures are the
 * database being away or overloaded (503, retry) and which are bugs (left as they are: a 500 that
 * gets logged). A failure without an SQLSTATE never reached the server: a refused or dropped
 * connection, a connection or query timeout.
 */

/** SQLSTATE classes of a transient condition: connection exception, insufficient resources, operator intervention, system error. */
const TRANSIENT_CLASSES = new Set(['08', '53', '57', '58']);

/** Deadlock and serialization failure: the transaction is worth running again. */
const RETRYABLE = new Set(['40P01', '40001']);

/** The server's SQLSTATE, or undefined for a failure the server did not report (socket errors carry codes such as EPIPE). */
function sqlState(error: unknown): string | undefined {
  return error instanceof pg.DatabaseError ? error.code : undefined;
}

/** A conflict between concurrent transactions that a retry resolves. */
export function isRetryable(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && RETRYABLE.has(code);
}

function isTransient(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = sqlState(error);
  if (code === undefined) return true; // never reached the server, or lost it: nothing committed we know of
  return TRANSIENT_CLASSES.has(code.slice(0, 2)) || RETRYABLE.has(code);
}

/** The error callers see: StorageUnavailableError when the database is away or busy, otherwise the error unchanged. */
export function storageError(error: unknown, doing: string): unknown {
  if (error instanceof StorageUnavailableError || !isTransient(error)) return error;
  return new StorageUnavailableError(`PostgreSQL is unavailable (${doing}): ${(error as Error).message}`, { cause: error });
}
