import type Database from 'better-sqlite3';
import { sealText } from './chunk.js';
import { SEAL_SQL } from './chunk-table.js';

/**
 * Seals every text chunk except each device's newest (which keeps taking appends as text): the
 * upgrade of a file written before chunks were sealed (schema migration 8). Inside the caller's
 * transaction; returns how many chunks it sealed.
 */
export function sealOldChunks(db: Database.Database): number {
  // Ids first: better-sqlite3 runs no other statement on a connection while one iterates.
  const ids = db
    .prepare(
      `SELECT id FROM chunks c WHERE typeof(data) = 'text'
         AND id <> (SELECT id FROM chunks n WHERE n.device_key = c.device_key ORDER BY last_ts_us DESC LIMIT 1)`,
    )
    .pluck()
    .all() as number[];
  const dataOf = db.prepare('SELECT data FROM chunks WHERE id = ?').pluck();
  const seal = db.prepare(SEAL_SQL);
  const remove = db.prepare('DELETE FROM chunks WHERE id = ?');
  let sealed = 0;
  for (const id of ids) {
    const blob = sealText(dataOf.get(id) as string); // typeof(data) = 'text'
    if (blob === undefined) continue; // kept as text: readers read both forms
    seal.run(blob, id);
    remove.run(id);
    sealed++;
  }
  return sealed;
}
