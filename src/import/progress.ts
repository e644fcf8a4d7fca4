import type { ImportTally } from './importer.js';

/**
 * A progress line on a terminal: redrawn in place (`\r`) at most a few times a second, on standard
 * error, so standard output keeps only the summary. Not a terminal (a pipe, a file, CI): nothing.
 */
export class ProgressLine {
  private lastDraw = 0;
  private drawn = false;
  private readonly started = Date.now();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly position: () => { read: number; total: number | undefined },
    private readonly everyMs = 250,
  ) {}

  get enabled(): boolean {
    return this.out.isTTY === true;
  }

  update(tally: Readonly<ImportTally>): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDraw < this.everyMs) return;
    this.lastDraw = now;
    const { read, total } = this.position();
    const share = total === undefined || total === 0 ? '' : ` ${Math.min(100, Math.floor((read / total) * 100))}%`;
    const bytes = total === undefined ? mib(read) : `${mib(read)} of ${mib(total)}`;
    const rate = Math.round(tally.read / Math.max(0.001, (now - this.started) / 1000));
    const text = `importing:${share} ${bytes}, line ${n(tally.settledThroughLine)}: ${n(tally.accepted)} accepted, ${n(tally.duplicates)} duplicates, ${n(tally.rejected)} rejected (${n(rate)} readings/s)`;
    this.out.write(`\r${text.slice(0, Math.max(20, (this.out.columns ?? 120) - 1))}\x1b[K`);
    this.drawn = true;
  }

  /** Takes the line away before the summary is printed. */
  clear(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }
}

export const n = (value: number) => value.toLocaleString('en-US');
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
