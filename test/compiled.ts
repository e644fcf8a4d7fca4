import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { ROOT } from '../bench/proc.js';

let compiled: string | undefined;

/**
 * Tally's CLI compiled to JavaScript once per test process (esbuild, file by file, as tsc would lay
 * them out; under a second), in .scratch/ inside the repository so node_modules resolves, and
 * removed when the process exits. It runs as `node dist/app/cli.js` does: through tsx every run
 * would start ~1.5 s slower and its server carry ~100 MiB more (235 against 135 MiB idle).
 */
export function compiledCli(): string {
  if (compiled !== undefined) return compiled;
  removeOrphans();
  const dir = join(ROOT, '.scratch', `tally-${process.pid}`);
  const entryPoints = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join(ROOT, 'src', file));
  buildSync({ entryPoints, outdir: dir, format: 'esm', platform: 'node', target: 'node20', logLevel: 'error' });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  compiled = join(dir, 'app', 'cli.js');
  return compiled;
}

/** Test runners may end a process without its exit handlers: the builds of processes gone are removed here. */
function removeOrphans(): void {
  const scratch = join(ROOT, '.scratch');
  if (!existsSync(scratch)) return;
  for (const name of readdirSync(scratch)) {
    const pid = /^tally-(\d+)$/.exec(name)?.[1];
    if (pid === undefined || alive(Number(pid))) continue;
    rmSync(join(scratch, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
