import type pg from 'pg';

/**
 * Runs `body` on a connection of its own from the pool; `body` opens and commits its transaction.
 * On failure the transaction is rolled back, and a connection that cannot even do that is
 * destroyed rather than returned to the pool.
 */
export async function withClient<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    const result = await body(client);
    client.release();
    return result;
  } catch (err) {
    const broken = await client.query('ROLLBACK').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    client.release(broken);
    throw err;
  }
}
