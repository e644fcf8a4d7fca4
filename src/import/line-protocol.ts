import { isSkipped, LineProtocolError, type Precision } from '../ingest/line-protocol.js';
import { LineProtocolMapper, type LineProtocolMapping } from '../ingest/line-protocol-mapping.js';
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
  const mapper = new LineProtocolMapper(mapping, precision);
  for await (const chunk of lines) {
    const nowUs = Date.now() * 1000;
    const out: ImportRecord[] = [];
    for (const { number, text } of chunk) {
      if (text === null) {
        out.push({ line: number, error: tooLong });
        continue;
      }
      if (isSkipped(text)) continue;
      try {
        out.push({ line: number, item: mapper.item(text, nowUs) });
      } catch (err) {
        if (!(err instanceof LineProtocolError)) throw err;
        out.push({ line: number, error: err.message });
      }
    }
    untimed.count = mapper.untimed;
    yield out;
  }
}
