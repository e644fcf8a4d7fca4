import { postgresConfig } from '../../src/store/postgres/config.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { createDatabase, describePg } from '../pg/database.js';
import { runStoreContract } from './contract.js';

describePg('PostgreSQL store', () => {
  runStoreContract('postgres', async () => {
    const db = await createDatabase();
    const store = await PostgresStore.open(postgresConfig(db.url, { poolSize: 4 }));
    return {
      store,
      cleanup: async () => {
        await store.close();
        await db.drop();
      },
    };
  });
});
