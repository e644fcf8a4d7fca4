/**
 * Who used the CPU during a measured run. The machine is shared, so each run reports the share of
 * all cores spent by the server, by this process (the load generator) and by everything else.
 * Linux only (/proc); elsewhere the figures are null.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

const TICKS_PER_S = 100; // USER_HZ, 100 on Linux

export interface CpuShare {
  /** Percent of all cores' time during the run. */
  readonly serverPct: number;
  readonly loadGeneratorPct: number;
  readonly otherPct: number;
}

interface Sample {
  readonly atMs: number;
  readonly machineBusyS: number;
  readonly serverS: number;
  readonly selfS: number;
}

function machineBusyS(): number {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / TICKS_PER_S;
}

function processS(pid: number): number {
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

function sample(serverPid: number): Sample | undefined {
  try {
    const self = process.cpuUsage();
    return { atMs: performance.now(), machineBusyS: machineBusyS(), serverS: processS(serverPid), selfS: (self.user + self.system) / 1e6 };
  } catch {
    return undefined;
  }
}

/** Starts measuring; the returned function ends the measurement. */
export function measureCpu(serverPid: number): () => CpuShare | null {
  const start = sample(serverPid);
  return () => {
    const end = sample(serverPid);
    if (start === undefined || end === undefined) return null;
    const capacity = ((end.atMs - start.atMs) / 1000) * cpus().length;
    const server = end.serverS - start.serverS;
    const self = end.selfS - start.selfS;
    const other = Math.max(0, end.machineBusyS - start.machineBusyS - server - self);
    const pct = (s: number) => Math.round((1000 * s) / capacity) / 10;
    return { serverPct: pct(server), loadGeneratorPct: pct(self), otherPct: pct(other) };
  };
}
