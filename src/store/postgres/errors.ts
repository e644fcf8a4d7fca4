import pg from 'pg';
import { StorageUnavailableError } from '../../domain/errors.js';

/**
 * What a node-postgres failure means to Tally. The server's SQLSTATE says which failures are the
 * database being away or overloaded (503, retry) and which are bugs (a 500 that gets logged). A
 * failure without an SQLSTATE never reached the server or lost it: a refused or dropped connection,
 * a connection or query timeout. No pg type leaves the backend: bugs leave as plain errors.
 */

/** SQLSTATE classes of a transient condition: connection exception, insufficient resources, operator intervention, system error. */
const TRANSIENT_CLASSES = new Set(['08', '53', '57', '58']);

/** Deadlock and serialization failure: the transaction is worth running again. */
const RETRYABLE = new Set(['40P01', '40001']);

/** A conflict between concurrent transactions that a retry resolves. */
export function isRetryable(error: unknown): boolean {
  return error instanceof pg.DatabaseError && error.code !== undefined && RETRYABLE.has(error.code);
}

/** A row for a week without a partition: another node dropped one this node thought was there. */
export function isMissingPartition(error: unknown): boolean {
  return error instanceof pg.DatabaseError && error.code === '23514' && /no partition/.test(error.message);
}

function isTransient(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) {
    const code = error.code ?? '';
    return TRANSIENT_CLASSES.has(code.slice(0, 2)) || RETRYABLE.has(code);
  }
  // Socket errors (ECONNREFUSED, EPIPE ...) and node-postgres' own connection and timeout errors.
  return error instanceof Error && !(error instanceof TypeError);
}

/** The error callers see: StorageUnavailableError when the database is away or busy, else a plain Error naming what failed. */
export function storageError(error: unknown, doing: string): Error {
  if (error instanceof StorageUnavailableError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (isTransient(error)) return new StorageUnavailableError(`PostgreSQL is unavailable (${doing}): ${message}`, { cause: error });
  const code = error instanceof pg.DatabaseError ? ` [SQLSTATE ${error.code}]` : '';
  return new Error(`PostgreSQL failed (${doing}): ${message}${code}`, { cause: error });
}
