import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { ROOT, startPingServer, type Server } from '../../bench/proc.js';
import { tempDir } from '../helpers.js';

let compiled: { dir: string; cli: string } | undefined;
/** Servers started from `compiled` and not yet stopped: the last to stop removes it. */
let live = 0;

/**
 * The sources compiled to JavaScript once per test process (esbuild, file by file, as tsc would
 * lay them out; under a second), in .scratch/ inside the repository so node_modules resolves. The
 * server then runs as `node dist/app/cli.js` does: through tsx it would carry ~100 MiB more
 * (measured: 235 MiB against 135 MiB idle), which would void the overload test's RSS ceiling.
 */
function compiledCli(): string {
  if (compiled !== undefined) return compiled.cli;
  const dir = join(ROOT, '.scratch', `hostile-${process.pid}`);
  const entryPoints = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join(ROOT, 'src', file));
  buildSync({ entryPoints, outdir: dir, format: 'esm', platform: 'node', target: 'node20', logLevel: 'error' });
  compiled = { dir, cli: join(dir, 'app', 'cli.js') };
  return compiled.cli;
}

function releaseCompiled(): void {
  if (--live > 0 || compiled === undefined) return;
  rmSync(compiled.dir, { recursive: true, force: true });
  compiled = undefined;
}

/**
 * Tally as a process of its own (on a fresh data directory and a free port of 127.0.0.1), for the
 * tests that attack it over real sockets: the attacker and the measurements run in other processes,
 * so neither steals the server's event loop.
 */
export async function startTallyProcess(env: Record<string, string> = {}): Promise<Server & { stop(): Promise<void> }> {
  const data = tempDir('tally-hostile-');
  live++;
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
        releaseCompiled();
      },
    };
  } catch (err) {
    data.cleanup();
    releaseCompiled();
    throw err;
  }
}
