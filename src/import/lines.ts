import { StringDecoder } from 'node:string_decoder';

/** One line of a text file: its 1-based number and its text without the line ending. */
export interface Line {
  readonly number: number;
  /** Null when the line is longer than the limit: its text was not kept. */
  readonly text: string | null;
}

/**
 * The lines of a UTF-8 byte stream, a chunk's worth at a time (an array per chunk, so the cost of
 * an await is paid per chunk, not per line). A line longer than `maxChars` is reported with null
 * text and skipped up to its end, so one endless line cannot grow memory. A leading byte-order
 * mark and `\r\n` endings are taken off.
 */
export async function* linesOf(chunks: AsyncIterable<Buffer>, maxChars: number): AsyncGenerator<Line[]> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let skipping = false; // inside a line already reported as too long
  let number = 0;
  let first = true;
  const out: Line[] = [];
  const emit = (text: string) => {
    number++;
    if (skipping) {
      skipping = false;
      return;
    }
    if (text.length > maxChars) {
      out.push({ number, text: null });
      return;
    }
    out.push({ number, text: text.endsWith('\r') ? text.slice(0, -1) : text });
  };
  const consume = (text: string) => {
    if (first) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      emit(pending === '' ? text.slice(start, nl) : pending + text.slice(start, nl));
      pending = '';
      start = nl + 1;
    }
    if (skipping) return;
    pending += text.slice(start);
    if (pending.length > maxChars) {
      out.push({ number: number + 1, text: null });
      pending = '';
      skipping = true;
    }
  };
  for await (const chunk of chunks) {
    consume(decoder.write(chunk));
    if (out.length > 0) yield out.splice(0);
  }
  consume(decoder.end());
  if (pending !== '' && !skipping) emit(pending);
  if (out.length > 0) yield out.splice(0);
}
