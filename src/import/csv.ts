import { Readable } from 'node:stream';
import { parse, type CsvError, type Info } from 'csv-parse';
import type { EpochUnit } from '../domain/timestamp.js';
import type { ReadingShape } from '../ingest/shape.js';
import { ndjsonShape } from './ndjson.js';
import { MAX_LINE_CHARS, type ImportRecord, type RecordSource } from './records.js';

/**
 * CSV files with a header row, as GET /v1/export?format=csv writes them: `device_id`, `ts`,
 * `count`, then `payload.<field>` columns. A column with any other name is a payload field of that
 * name, so a CSV from elsewhere (`device_id,ts,temp`) imports too. Parsed by csv-parse.
 *
 * A cell has no type in CSV, so payload cells are read back as the export wrote them: empty is no
 * field, `true`/`false` a boolean, a JSON number a number, `{...}`/`[...]` that parses as JSON an
 * object or array, anything else a string. A reading with no payload cells has no payload. NDJSON
 * is the lossless format; CSV loses what it cannot say (a string "42" comes back a number).
 */

export class CsvHeaderError extends Error {}

/** A row read as the /v1 reading it was exported from (the NDJSON shape), named as a row in errors. */
export function csvShape(precision: EpochUnit | undefined): ReadingShape {
  return { ...ndjsonShape(precision), itemForm: 'a CSV row' };
}

interface Columns {
  readonly deviceId: number;
  readonly ts: number;
  readonly count: number;
  /** Payload field name by column index; undefined for the columns above. */
  readonly fields: ReadonlyArray<string | undefined>;
}

function columnsOf(header: readonly string[]): Columns {
  const seen = new Set<string>();
  const fields: Array<string | undefined> = [];
  for (const raw of header) {
    const name = raw.trim();
    if (name === '') throw new CsvHeaderError(`line 1: the header has an empty column name (column ${fields.length + 1})`);
    if (seen.has(name)) throw new CsvHeaderError(`line 1: the header names column ${JSON.stringify(name)} twice`);
    seen.add(name);
    fields.push(name === 'device_id' || name === 'ts' || name === 'count' ? undefined : name.startsWith('payload.') ? name.slice('payload.'.length) : name);
  }
  const index = (name: string) => header.findIndex((h) => h.trim() === name);
  const columns = { deviceId: index('device_id'), ts: index('ts'), count: index('count'), fields };
  const missing = ['device_id', 'ts'].filter((c) => index(c) < 0);
  if (missing.length > 0) {
    throw new CsvHeaderError(`line 1: the header has no ${missing.join(' or ')} column (it needs device_id, ts, and optionally count and payload.<field> columns)`);
  }
  const fieldNames = fields.filter((f): f is string => f !== undefined);
  const twice = fieldNames.find((f, i) => fieldNames.indexOf(f) !== i);
  if (twice !== undefined) throw new CsvHeaderError(`line 1: the header names payload field ${JSON.stringify(twice)} twice`);
  return columns;
}

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const INTEGER = /^-?\d+$/;
const EPOCH = /^-?\d+(?:\.\d+)?$/;

/** A payload cell as the export wrote it; undefined for an empty cell (no field). */
export function payloadCell(text: string): unknown {
  if (text === '') return undefined;
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (JSON_NUMBER.test(text)) return Number(text);
  const c = text[0];
  if (c === '{' || c === '[') {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

function itemOf(record: readonly string[], columns: Columns, numericTs: boolean): Record<string, unknown> {
  const countText = columns.count < 0 ? '' : record[columns.count]!;
  const tsText = record[columns.ts]!;
  let payload: Record<string, unknown> | null = null;
  for (let i = 0; i < record.length; i++) {
    const field = columns.fields[i];
    if (field === undefined) continue;
    const value = payloadCell(record[i]!);
    if (value === undefined) continue;
    (payload ??= {})[field] = value;
  }
  return {
    device_id: record[columns.deviceId],
    // Numbers where they can be one; other text goes on as text, for the pipeline to name the field.
    ts: numericTs && EPOCH.test(tsText) ? Number(tsText) : tsText,
    count: countText === '' ? null : INTEGER.test(countText) ? Number(countText) : countText,
    payload,
  };
}

/** Records, a thousand rows at a time; a malformed row (a stray quote, say) is reported by line and skipped. */
export async function* csvRecords(chunks: AsyncIterable<Buffer>, precision: EpochUnit | undefined): RecordSource {
  const parser = parse({
    info: true,
    bom: true,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    max_record_size: MAX_LINE_CHARS,
  });
  const skipped: ImportRecord[] = [];
  parser.on('skip', (err: CsvError) => skipped.push({ line: Number(err.lines) || 0, error: `not valid CSV: ${err.message}` }));
  const source = Readable.from(chunks);
  source.on('error', (err) => parser.destroy(err));
  source.pipe(parser);

  let columns: Columns | undefined;
  let out: ImportRecord[] = [];
  for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: Info }>) {
    if (skipped.length > 0) out.push(...skipped.splice(0));
    if (columns === undefined) {
      columns = columnsOf(record);
      continue;
    }
    const line = info.lines;
    if (record.length !== columns.fields.length) {
      out.push({ line, error: `the row has ${record.length} fields, the header ${columns.fields.length}` });
    } else {
      out.push({ line, item: itemOf(record, columns, precision !== undefined) });
    }
    if (out.length >= 1000) {
      yield out;
      out = [];
    }
  }
  if (columns === undefined && skipped.length === 0) throw new CsvHeaderError('the file has no header row (device_id, ts, count, payload.<field>...)');
  out.push(...skipped.splice(0));
  if (out.length > 0) yield out;
}
