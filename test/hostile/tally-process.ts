import { startPingServer, type Server } from '../../bench/proc.js';
import { compiledCli } from '../compiled.js';
import { tempDir } from '../helpers.js';

/**
 * Tally as a process of its own (on a fresh data directory and a free port of 127.0.0.1), for the
 * tests that attack it over real sockets: the attacker and the measurements run in other processes,
 * so neither steals the server's event loop.
 */
export async function startTallyProcess(env: Record<string, string> = {}): Promise<Server & { stop(): Promise<void> }> {
  const data = tempDir('tally-hostile-');
  try {
    const server = await startPingServer('tally', process.execPath, [compiledCli(), 'serve'], {
      TALLY_DATA_DIR: data.dir,
      TALLY_LOG_LEVEL: 'warn',
      ...env,
    });
    return {
      ...server,
      stop: async () => {
        await server.proc.stop(15_000);
        data.cleanup();
      },
    };
  } catch (err) {
    data.cleanup();
    throw err;
  }
}
