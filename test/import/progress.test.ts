import { PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { ProgressLine } from '../../src/import/progress.js';

/** The progress line of tally import: redrawn in place on a terminal, silent anywhere else. */

function terminal(isTTY: boolean) {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  stream.isTTY = isTTY;
  stream.columns = 200;
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
}

const tally = { read: 12_345, accepted: 12_000, duplicates: 300, rejected: 45, firstRejected: [], settledThroughLine: 12_400 };

describe('progress line', () => {
  test('on a terminal: one line redrawn with \\r, the share of the file, the counts; cleared before the summary', async () => {
    const out = terminal(true);
    const progress = new ProgressLine(out.stream, () => ({ read: 3 * 2 ** 20, total: 12 * 2 ** 20 }), 0);
    progress.update(tally);
    progress.clear();
    await new Promise((r) => setImmediate(r));
    expect(out.text()).toMatch(/^\rimporting: 25% 3\.0 MiB of 12\.0 MiB, line 12,400: 12,000 accepted, 300 duplicates, 45 rejected \([\d,]+ readings\/s\)\x1b\[K\r\x1b\[K$/);
  });

  test('not a terminal (a pipe, a file, CI): nothing at all', async () => {
    const out = terminal(false);
    const progress = new ProgressLine(out.stream, () => ({ read: 1, total: undefined }), 0);
    progress.update(tally);
    progress.clear();
    await new Promise((r) => setImmediate(r));
    expect(out.text()).toBe('');
  });
});
