/** The servers under test, each a child process of the bench. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from './peers/proc.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ServerProcess {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
  /** Peak resident set size so far (VmHWM), bytes; undefined where /proc is unavailable. */
  peakRss(): number | undefined;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});


function peakRss(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function start(name: string, args: string[], env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env, BARE_PORT: String(port), TALLY_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode} at start:\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`${name} did not answer GET /api/ping within 20 s:\n${stderr}`);
    const ok = await fetch(`${url}/api/ping`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    name,
    url,
    pid: child.pid!,
    peakRss: () => peakRss(child.pid!),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      if (stderr.trim() !== '') process.stderr.write(`[${name} stderr]\n${stderr}\n`);
    },
  };
}

/** The built Tally (`npm run build` first) on `dataDir`, logging warnings only. */
export function startTally(dataDir: string, nodeArgs: string[] = []): Promise<ServerProcess> {
  return start('tally', [...nodeArgs, 'dist/app/cli.js', 'serve'], {
    TALLY_HOST: '127.0.0.1',
    TALLY_DATA_DIR: dataDir,
    TALLY_LOG_LEVEL: 'warn',
  });
}

/** The bare Fastify server: parses the body, answers 202, stores nothing. */
export function startBare(): Promise<ServerProcess> {
  return start('bare', ['--import', 'tsx', 'bench/bare-server.ts'], {});
}
