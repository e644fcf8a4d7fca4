import { openStore, type StoreConfig } from '../store/index.js';

/**
 * `tally migrate`: brings the store's schema up to date and exits, so a deployment can migrate
 * once before it starts any node. Every backend migrates when it opens (PostgreSQL under an
 * advisory lock, so nodes that start together still migrate once): opening and closing is the job.
 */
export async function migrateStore(store: StoreConfig): Promise<void> {
  const opened = await openStore(store);
  await opened.close();
}
