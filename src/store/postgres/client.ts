import type pg from 'pg';

/**
 * Runs `body` on a connection of its own from the pool; `body` opens and commits its transaction.
 * On failure the transaction is rolled back, and a connection that cannot even do that is
 * destroyed rather than returned to the pool.
 */
export async function withClient<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // While checked out the pool does not listen to the client: a backend terminated under it
  // (pg_terminate_backend, a restart) fails the statement in flight, and then the socket's end is an
  // 'error' event that, unheard, would be an uncaught exception. The statements report the failure.
  const ignore = (): void => undefined;
  client.on('error', ignore);
  const release = (err?: Error): void => {
    client.removeListener('error', ignore);
    client.release(err);
  };
  try {
    const result = await body(client);
    release();
    return result;
  } catch (err) {
    const broken = await client.query('ROLLBACK').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    release(broken);
    throw err;
  }
}
