import type { EpochUnit } from '../domain/timestamp.js';

/**
 * How one transport or surface carries readings: which property of each item holds each field, and
 * the rules its documentation sets. The ingest pipeline reads items through a shape, so a surface
 * only says where things are; the checks themselves live once, in `candidate.ts`.
 *
 * Property names double as the field names of errors, so a reading is reported in the words the
 * client used (`readings[3].timestamp`, `ts`, `data_payload`).
 */
export interface ReadingShape {
  /**
   * The device: a property of each item, or one id for the whole request (already checked by the
   * surface, which refuses a bad one as a request-level error).
   */
  readonly deviceId: { readonly property: string } | { readonly fixed: string };
  /** The property holding the timestamp. */
  readonly ts: string;
  /**
   * Numeric timestamps: their unit, or the message refusing them when the request did not say one.
   * Absent: only RFC 3339 text is accepted.
   */
  readonly epoch?: { readonly unit: EpochUnit } | { readonly refuse: string };
  /** The property holding the count, and whether it may be absent (null) or must be > 0. */
  readonly count?: { readonly property: string; readonly rule: CountRule };
  /**
   * The property holding the payload object, and whether it must be present. `serialized`: the
   * property holds the object already as JSON text, built by a mapper that made it flat (line
   * protocol's tags and fields), so only its size is checked, not its shape and depth again.
   */
  readonly payload?: { readonly property: string; readonly required: boolean; readonly serialized?: boolean };
  /**
   * Prefix of an item's field names in errors (`readings[3].`); absent, fields are named bare and
   * the item is named `reading`.
   */
  readonly itemPath?: (index: number) => string;
  /** What an item must look like, for the error when it is not an object: `{device_id, ts, count?, payload?}`. */
  readonly itemForm: string;
}

/** `optional`: absent or null is no count; `required`: an integer >= 0; `positive`: an integer > 0. */
export type CountRule = 'optional' | 'required' | 'positive';

/** The name of `property` of item `index` in an error. */
export function fieldName(shape: ReadingShape, index: number, property: string): string {
  return shape.itemPath === undefined ? property : `${shape.itemPath(index)}${property}`;
}

/** The name of item `index` itself in an error. */
export function itemName(shape: ReadingShape, index: number): string {
  return shape.itemPath === undefined ? 'reading' : shape.itemPath(index).replace(/\.$/, '');
}
