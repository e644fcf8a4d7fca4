/**
 * The server processes of every bench harness (`npm run bench`, `npm run bench:peers`,
 * bench/peers/ab.ts, bench/peers/warmup.ts): started on a free port of 127.0.0.1, waited for until
 * they answer, measured through /proc and stopped by PID; killed by PID if the bench exits first.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The repository root: Tally's servers run from here. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

let clockTicks: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat times (getconf CLK_TCK; 100 on Linux). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds of a process so far (every thread), or undefined if it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** User + system CPU seconds of each thread of a process so far, by thread id (empty if it is gone). */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const s = statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
    if (s !== undefined) out.set(tid, s);
  }
  return out;
}

/** utime + stime of a /proc stat file, seconds. */
function statCpuSeconds(path: string): number | undefined {
  try {
    const stat = readFileSync(path, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the command name.
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** Peak resident set size (VmHWM) of a process, bytes, or undefined if it is gone. */
export function peakRssBytes(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Bytes a process caused to be written to storage so far (write_bytes of /proc/<pid>/io, counted
 * when pages are dirtied), or undefined if it is gone or the kernel does not account I/O.
 */
export function diskWriteBytes(pid: number): number | undefined {
  try {
    const match = /^write_bytes:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Processes this bench started and has not seen exit; killed by PID if the bench exits first. */
const running = new Map<number, ChildProcess>();
process.once('exit', () => {
  for (const pid of running.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export interface Proc {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** The last few KiB the process wrote (stdout and stderr). */
  output(): string;
  /** The last few KiB the process wrote to stderr alone. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** kill -9 and wait for the exit. */
  kill9(): Promise<void>;
}

const TAIL = 16 * 1024;

export function startProcess(command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Proc {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  running.set(pid, child);
  let tail = '';
  let errTail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-TAIL);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', (chunk: Buffer) => {
    keep(chunk);
    errTail = (errTail + chunk.toString('utf8')).slice(-TAIL);
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      keep(Buffer.from(`\n${err.message}\n`));
      done = true;
      running.delete(pid);
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      done = true;
      running.delete(pid);
      resolve({ code, signal });
    });
  });
  const signal = (sig: NodeJS.Signals) => {
    if (done) return;
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  return {
    pid,
    exited,
    alive: () => !done,
    output: () => tail,
    stderr: () => errTail,
    stop: async (graceMs = 30_000) => {
      if (done) return;
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    kill9: async () => {
      signal('SIGKILL');
      await exited;
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it resolves true, the process exits, or `timeoutMs` passes. */
export async function waitReady(name: string, proc: Proc, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (!proc.alive()) throw new Error(`${name} exited during start:\n${proc.output()}`);
    if (await probe().catch(() => false)) return (performance.now() - started) / 1000;
    if (performance.now() - started > timeoutMs) {
      await proc.stop(5_000);
      throw new Error(`${name} was not ready within ${timeoutMs / 1000} s:\n${proc.output()}`);
    }
    await sleep(50);
  }
}

/** Whether a request to `url` answers 2xx (within 2 s). */
export async function httpOk(url: string, init?: RequestInit): Promise<boolean> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2_000) });
  await res.arrayBuffer();
  return res.ok;
}

/** A server started by a bench, listening on 127.0.0.1. */
export interface Server {
  readonly name: string;
  readonly url: string;
  readonly proc: Proc;
  /** Seconds from spawn until the server answered its health check. */
  readonly readyS: number;
}

/**
 * Starts a server on a free port of 127.0.0.1 (`spawnAt` gets the port) and waits until `ready`
 * answers true for its URL.
 */
export async function startServer(
  name: string,
  spawnAt: (port: number) => Proc | Promise<Proc>,
  ready: (url: string) => Promise<boolean>,
): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = await spawnAt(port);
  const readyS = await waitReady(name, proc, () => ready(url));
  return { name, url, proc, readyS };
}

/**
 * One of this repository's servers (Tally, or bench/bare-server.ts): `command args` run from the
 * repository root with `env` on top of this process's, TALLY_HOST, TALLY_PORT and BARE_PORT set to
 * a free port of 127.0.0.1; ready once GET /api/ping answers 2xx.
 */
export function startPingServer(name: string, command: string, args: readonly string[], env: Record<string, string>): Promise<Server> {
  return startServer(
    name,
    (port) =>
      startProcess(command, args, {
        cwd: ROOT,
        env: { ...process.env, ...env, TALLY_HOST: '127.0.0.1', TALLY_PORT: String(port), BARE_PORT: String(port) },
      }),
    (url) => httpOk(`${url}/api/ping`),
  );
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** PIDs of other processes whose command line matches `pattern` (pgrep -f), without a shell. */
export function pgrep(pattern: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map(Number)
      .filter((pid) => pid !== process.pid);
  } catch (err) {
    if ((err as { status?: number }).status === 1) return []; // pgrep exits 1 when nothing matches
    throw new Error(`pgrep failed, so the bench cannot tell whether bench/run.ts is running: ${(err as Error).message}`);
  }
}
