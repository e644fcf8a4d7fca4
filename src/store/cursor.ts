import { InvalidCursorError } from '../domain/errors.js';
import type { DeviceListQuery, DeviceReadingsQuery, SortOrder } from './types.js';

/**
 * The one codec of page cursors, for every listing of every backend. A cursor is opaque to clients:
 * the listing it belongs to (so that reusing it for another is an error, not a gap or a repeat)
 * and the position after which the next page starts, as base64url JSON.
 */

/** A position: the last item's sort keys. */
export type Position = readonly (string | number | null)[];

/** What each element of a position must be: a whole number, or any sort value. */
export type PositionKind = 'integer' | 'value';

export function encodeCursor(listing: string, position: Position): string {
  return Buffer.from(JSON.stringify([listing, ...position])).toString('base64url');
}

const NOT_OURS = 'cursor is not one this service issued; pass next_cursor unchanged';

/** The position in `text`, or InvalidCursorError when it is not a cursor of `listing` of this form. */
export function decodeCursor(text: string, listing: string, kinds: readonly PositionKind[]): Position {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString());
  } catch {
    throw new InvalidCursorError(NOT_OURS);
  }
  if (!Array.isArray(parsed) || parsed.length !== kinds.length + 1 || typeof parsed[0] !== 'string') throw new InvalidCursorError(NOT_OURS);
  const position = parsed.slice(1) as unknown[];
  const fits = kinds.every((kind, i) => {
    const v = position[i];
    return kind === 'integer' ? Number.isSafeInteger(v) : v === null || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
  });
  if (!fits) throw new InvalidCursorError(NOT_OURS);
  if (parsed[0] !== listing) {
    throw new InvalidCursorError('cursor belongs to a listing with another sort, order or filter; start again without it');
  }
  return position as Position;
}

/** What a device-listing cursor belongs to: reusing one for another sort, order or prefix is an error. */
export function listingOf(query: DeviceListQuery): string {
  const sort = query.sort.by === 'payload' ? `payload.${query.sort.fields.join(',')}` : query.sort.by;
  return `devices|${sort}|${query.order}|${query.prefix ?? ''}`;
}

/** The listing of one device's history in one order. */
export const historyListing = (order: SortOrder): string => `history|${order}`;

/** The listing of all readings (of the devices starting with `prefix`), newest first. */
export const recordsListing = (prefix: string | undefined): string => (prefix === undefined || prefix === '' ? 'records' : `records|${prefix}`);

/**
 * The [from, to) a history page reads: the query's range (unbounded ends as the extreme safe
 * integers), narrowed past the cursor's timestamp in the asked order.
 */
export function historyRange(query: DeviceReadingsQuery): { from: number; to: number; listing: string } {
  const listing = historyListing(query.order);
  let from = query.fromUs ?? Number.MIN_SAFE_INTEGER;
  let to = query.toUs ?? Number.MAX_SAFE_INTEGER;
  if (query.cursor !== undefined) {
    const [after] = decodeCursor(query.cursor, listing, ['integer']) as [number];
    if (query.order === 'asc') from = Math.max(from, after + 1);
    else to = Math.min(to, after);
  }
  return { from, to, listing };
}
