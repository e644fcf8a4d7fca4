import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

/**
 * Readers of setting values shared by every layer's settings (src/app/config.ts, the HTTP server's,
 * MQTT's): each throws ConfigError naming the variable or flag.
 */

export function wholeNumber(name: string, raw: string, min: number, max: number): number {
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= min && value <= max)) throw new ConfigError(`${name} must be a whole number between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  return value;
}

/** A PEM file's bytes (a certificate, a key, a CA), read once at start. */
export function pemFile(name: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
}

/** The app's reader of one setting: [the variable or flag it came from, its value or default]. */
export type SettingReader<Name extends string> = (key: Name) => readonly [string, string];
