import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: the CLI runs from here (its SQLite threads load tsx from the working directory). */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/app/cli.ts', import.meta.url));

export interface ImportRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `tally import ...args` as a user runs it, a process of its own; `stdin` is piped in when given. */
export function runImport(args: readonly string[], env: Record<string, string>, stdin?: Buffer | string): Promise<ImportRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'import', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', TALLY_LOG_LEVEL: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}
