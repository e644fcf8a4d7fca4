import Database from 'better-sqlite3';
import { rmSync, mkdirSync, statSync } from 'node:fs';
const which = process.argv[2]!; // path to src root (base or new)
const { SqliteStore } = await import(`${which}/src/store/sqlite/store.ts`);
const dir = `/tmp/chunks-scratch/db-${process.pid}`;
rmSync(dir, { recursive: true, force: true }); mkdirSync(dir);
const file = `${dir}/tally.db`;
const store = await SqliteStore.open({ file, synchronous: 'NORMAL', cacheMiB: 64, compactRows: 100_000 });
const BIG = Number(process.argv[3] ?? 300000), FD = Number(process.argv[4] ?? 300), FR = Number(process.argv[5] ?? 1000), BASE = Date.UTC(2024, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();
const t0 = performance.now();
const jobs: Array<() => Promise<unknown>> = [];
for (let start = 0; start < BIG; start += 10000) { jobs.push(() => store.appendBatch(mk1(start))); }
for (let start = 0; start < FD * FR; start += 10000) { jobs.push(() => store.appendBatch(mk2(start))); }
const { eachLimited } = await import(`${which}/bench/proc.ts`);
await eachLimited(jobs, 4, (j: any) => j());
function mk1(start: number) {
  return (Array.from({ length: Math.min(10000, BIG - start) }, (_, k) => { const i = start + k; const ms = BASE + i * 1000; return { deviceId: 'big', tsUs: ms * 1000, tsText: iso(ms), count: 1 + (i % 5), payload: JSON.stringify({ temp: 15 + (i % 100) / 10 }) }; }));
}
function mk2(start: number) {
  return (Array.from({ length: 10000 }, (_, k) => { const i = start + k; const ms = BASE + Math.floor(i / FD) * 60000; return { deviceId: `dev-${i % FD}`, tsUs: ms * 1000, tsText: iso(ms), count: 1 + (i % 3), payload: null }; }));
}
const loadMs = performance.now() - t0;
await store.getDevice('big');
await store.close();
const db = new Database(file, { readonly: true });
const total = BIG + FD * FR;
console.log('load ms', loadMs.toFixed(0), 'file', statSync(file).size, 'bytes/reading', (statSync(file).size / total).toFixed(2), 'freelist pages', db.pragma('freelist_count', { simple: true }), 'page', db.pragma('page_size', { simple: true }));
try { console.log(db.prepare("SELECT name, count(*) pages, sum(payload) payload, sum(unused) unused FROM dbstat GROUP BY name ORDER BY pages DESC").all()); } catch (e) { console.log(String(e)); }
console.log(db.prepare("SELECT typeof(data) form, count(*) chunks, sum(n) readings, sum(length(data)) bytes FROM chunks GROUP BY form").all());
db.close();
rmSync(dir, { recursive: true, force: true });
