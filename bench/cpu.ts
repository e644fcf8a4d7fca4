/**
 * Who used the CPU during a measured run. The machine is shared, so each run reports the share of
 * all cores spent by the server, by this process (the load generator) and by everything else.
 * Linux only (/proc); elsewhere the figures are null.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { cpuSeconds, ticksPerSecond } from './proc.js';

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
  return (user! + nice! + system! + irq! + softirq! + steal!) / ticksPerSecond();
}

function sample(serverPids: readonly number[]): Sample | undefined {
  try {
    const self = process.cpuUsage();
    const atMs = performance.now();
    const busyS = machineBusyS();
    let serverS: number | undefined = 0;
    for (const pid of serverPids) {
      const s = cpuSeconds(pid);
      serverS = s === undefined ? undefined : serverS + s;
      if (serverS === undefined) break;
    }
    return serverS === undefined ? undefined : { atMs, machineBusyS: busyS, serverS, selfS: (self.user + self.system) / 1e6 };
  } catch {
    return undefined;
  }
}

/**
 * Starts measuring; the returned function ends the measurement. The server may be several
 * processes (two Tally nodes, or the PostgreSQL backends serving the bench's own connections).
 */
export function measureCpu(serverPid: number | readonly number[]): () => CpuShare | null {
  const pids = typeof serverPid === 'number' ? [serverPid] : serverPid;
  const start = sample(pids);
  return () => {
    const end = sample(pids);
    if (start === undefined || end === undefined) return null;
    const capacity = ((end.atMs - start.atMs) / 1000) * cpus().length;
    const server = end.serverS - start.serverS;
    const self = end.selfS - start.selfS;
    const other = Math.max(0, end.machineBusyS - start.machineBusyS - server - self);
    const pct = (s: number) => Math.round((1000 * s) / capacity) / 10;
    return { serverPct: pct(server), loadGeneratorPct: pct(self), otherPct: pct(other) };
  };
}
