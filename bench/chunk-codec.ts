/**
 * Chunk forms compared on the reads workload's chunks (bench/reads.ts): bytes per reading and
 * decode time per reading of the text form and of the sealed form with each codec, and seal time
 * (from the text form, as the writer seals). No server, no SQLite: the codec alone, on this thread.
 *
 *   node --import tsx bench/chunk-codec.ts [--rounds 200]
 */
import { parseArgs } from 'node:util';
import { chunkLine, decodeChunk, decodeChunkTail, encodeSealed, sealText, type ChunkReading } from '../src/store/sqlite/chunk.js';
import { Codec } from '../src/store/sqlite/codec.js';
import { hardware, median } from './report.js';

const { values: flags } = parseArgs({ options: { rounds: { type: 'string', default: '200' } } });
const ROUNDS = Number(flags.rounds);
const BASE_US = Date.UTC(2024, 0, 1) * 1000;
const iso = (us: number) => new Date(us / 1000).toISOString();

/** Chunks as the workload's loads leave them: the big device's (16 KiB of text) and a fleet device's (3.5 KiB). */
function chunkOf(kind: 'big' | 'fleet', start: number): ChunkReading[] {
  const out: ChunkReading[] = [];
  let bytes = 0;
  for (let i = start; ; i++) {
    const tsUs = BASE_US + i * (kind === 'big' ? 1_000_000 : 60_000_000);
    const r: ChunkReading =
      kind === 'big'
        ? { tsUs, count: 1 + (i % 5), tsText: iso(tsUs), payload: JSON.stringify({ temp: 15 + (i % 100) / 10 }) }
        : { tsUs, count: 1 + ((i * 1000 + 7) % 3), tsText: iso(tsUs), payload: null };
    bytes += Buffer.byteLength(chunkLine(r.tsUs, r.count, r.tsText, r.payload));
    if (bytes > (kind === 'big' ? 16_384 : 3_500)) return out;
    out.push(r);
  }
}

function timePerReading(n: number, run: () => void): number {
  const times: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  return (median(times) * 1000) / n;
}

const hw = hardware();
console.log(`chunk forms, ${ROUNDS} rounds, medians; machine: ${hw.cpu}, ${hw.cores} cores, node ${hw.node}`);
console.log(`${'chunk'.padEnd(22)}${'form'.padEnd(10)}${'bytes/reading'.padStart(14)}${'decode µs/r'.padStart(13)}${'tail(1) µs'.padStart(12)}${'seal µs/r'.padStart(11)}`);
for (const kind of ['big', 'fleet'] as const) {
  const chunks = [0, 1, 2, 3].map((k) => chunkOf(kind, k * 997));
  const n = chunks.reduce((sum, c) => sum + c.length, 0);
  const label = `${kind} (${chunks[0]!.length} readings)`;
  const texts = chunks.map((c) => c.map((r) => chunkLine(r.tsUs, r.count, r.tsText, r.payload)).join(''));
  const textBytes = texts.reduce((sum, t) => sum + Buffer.byteLength(t), 0);
  const lastTs = (c: ChunkReading[]) => c[c.length - 1]!.tsUs;
  console.log(
    `${label.padEnd(22)}${'text'.padEnd(10)}${(textBytes / n).toFixed(2).padStart(14)}` +
      `${timePerReading(n, () => texts.forEach((t) => decodeChunk(t))).toFixed(3).padStart(13)}` +
      `${((timePerReading(n, () => texts.forEach((t, k) => decodeChunkTail(t, lastTs(chunks[k]!)))) * n) / chunks.length).toFixed(2).padStart(12)}`,
  );
  for (const [name, codec] of [['none', Codec.None], ['deflate', Codec.Deflate], ['brotli', Codec.Brotli]] as const) {
    const blobs = chunks.map((c) => encodeSealed(c, codec)!);
    for (const [k, blob] of blobs.entries()) {
      if (JSON.stringify(decodeChunk(blob)) !== JSON.stringify(chunks[k])) throw new Error(`${name}: decoded readings differ`);
    }
    const bytes = blobs.reduce((sum, b) => sum + b.length, 0);
    console.log(
      `${''.padEnd(22)}${name.padEnd(10)}${(bytes / n).toFixed(2).padStart(14)}` +
        `${timePerReading(n, () => blobs.forEach((b) => decodeChunk(b))).toFixed(3).padStart(13)}` +
        `${((timePerReading(n, () => blobs.forEach((b, k) => decodeChunkTail(b, lastTs(chunks[k]!)))) * n) / chunks.length).toFixed(2).padStart(12)}` +
        `${timePerReading(n, () => texts.forEach((t) => sealText(t, codec))).toFixed(3).padStart(11)}`,
    );
  }
}
