import { ConfigError, SETTINGS } from '../config.js';

/**
 * A maintenance command's own words, taken out of its arguments: its switches (`--force`) and its
 * positional arguments; what is left are setting flags (`--store ...`) for loadConfig.
 */
export function commandArgs(argv: readonly string[], switches: readonly string[]): { on: Set<string>; positionals: string[]; rest: string[] } {
  const on = new Set<string>();
  const positionals: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (switches.includes(arg.replace(/^--/, '')) && arg.startsWith('--')) on.add(arg.slice(2));
    else if (!arg.startsWith('-')) positionals.push(arg);
    else {
      rest.push(arg);
      // A setting flag's value, unless given as --flag=value.
      if (!arg.includes('=') && i + 1 < argv.length) rest.push(argv[++i]!);
    }
  }
  return { on, positionals, rest };
}

/** The one file a command names, or a ConfigError saying how to call it. */
export function oneFile(positionals: readonly string[], usage: string): string {
  if (positionals.length !== 1) throw new ConfigError(`usage: ${usage}`);
  return positionals[0]!;
}

/**
 * Runs a command's work, an error being an answer to print (a file that exists, a backup that does
 * not check out), not a bug: its message on one line and exit code 1, no stack.
 */
export async function reportingErrors(command: string, work: () => Promise<void> | void): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    process.stderr.write(`tally ${command}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

/** Every setting's flag as a parseArgs option: a command that parses its own flags takes these too. */
export const SETTING_OPTIONS = Object.fromEntries(Object.values(SETTINGS).map((s) => [s.flag, { type: 'string' as const }]));

/** The setting flags among parsed values, as arguments for loadConfig (read as `tally serve` reads them). */
export function settingArgs(values: Record<string, unknown>): string[] {
  return Object.values(SETTINGS).flatMap((s) => (typeof values[s.flag] === 'string' ? [`--${s.flag}=${values[s.flag] as string}`] : []));
}
