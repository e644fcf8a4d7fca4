import { spawn } from 'node:child_process';
import { ROOT } from '../bench/proc.js';
import { compiledCli } from './compiled.js';

export interface CliRun {
  /** The exit code (null when killed). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * `tally <args>` as a user runs it: a process of its own (asynchronous, so a Tally under test in
 * this process keeps serving meanwhile), with only PATH, TALLY_LOG_LEVEL=warn and `env` in its
 * environment; `stdin` is piped in when given. Killed after a minute.
 */
export function runCli(args: readonly string[], env: Record<string, string>, stdin?: Buffer | string): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [compiledCli(), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', TALLY_LOG_LEVEL: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // a command that exits before reading all of it
    child.stdin.end(stdin);
  });
}
