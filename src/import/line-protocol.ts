import { LineProtocolError, parseLine, type Precision } from '../ingest/line-protocol.js';
import { lineProtocolItem, type LineProtocolMapping } from '../ingest/line-protocol-mapping.js';
import type { Line } from './lines.js';
import { tooLong, type ImportRecord, type RecordSource } from './records.js';

/**
 * Line-protocol files (what `influx export`/`influxd inspect export-lp` and Telegraf's file output
 * write), parsed and mapped exactly as POST /write does: the same parser, the same mapping
 * settings. `untimed` counts lines without a timestamp: they get the import's time, as InfluxDB
 * gives them the server's, so a re-run stores them again.
 */
export async function* lineProtocolRecords(
  lines: AsyncIterable<Line[]>,
  mapping: LineProtocolMapping,
  precision: Precision,
  untimed: { count: number },
): RecordSource {
  for await (const chunk of lines) {
    const nowUs = Date.now() * 1000;
    const out: ImportRecord[] = [];
    for (const { number, text } of chunk) {
      if (text === null) {
        out.push({ line: number, error: tooLong });
        continue;
      }
      const start = firstNonBlank(text);
      if (start < 0 || text[start] === '#') continue;
      try {
        const point = parseLine(text, number);
        if (point.timestamp === null) untimed.count++;
        out.push({ line: number, item: lineProtocolItem(point, precision, nowUs, mapping) });
      } catch (err) {
        if (!(err instanceof LineProtocolError)) throw err;
        out.push({ line: number, error: err.message });
      }
    }
    yield out;
  }
}

/** Index of the first character that is not a space or tab, or -1 for a blank line. */
function firstNonBlank(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9) return i;
  }
  return -1;
}
