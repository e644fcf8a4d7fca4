/**
 * Tally's group commits during a timed run, from its /metrics (tally_commit_readings and
 * tally_commit_duration_seconds): how many, how large, how long. What the batcher made of the load.
 */

export interface CommitTotals {
  readonly commits: number;
  readonly readings: number;
  readonly seconds: number;
}

export interface CommitRates {
  readonly commitsPerS: number;
  readonly readingsPerCommit: number;
  /** Mean time of one commit (the store's appendBatch), ms. */
  readonly meanMs: number;
}

function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Totals so far, added up over the nodes. */
export async function commitTotals(urls: readonly string[]): Promise<CommitTotals> {
  let commits = 0;
  let readings = 0;
  let seconds = 0;
  for (const url of urls) {
    const text = await (await fetch(`${url}/metrics`)).text();
    commits += metric(text, 'tally_commit_readings_count');
    readings += metric(text, 'tally_commit_readings_sum');
    seconds += metric(text, 'tally_commit_duration_seconds_sum');
  }
  return { commits, readings, seconds };
}

export function commitRates(before: CommitTotals, after: CommitTotals, durationS: number): CommitRates {
  const commits = after.commits - before.commits;
  return {
    commitsPerS: commits / durationS,
    readingsPerCommit: commits === 0 ? 0 : (after.readings - before.readings) / commits,
    meanMs: commits === 0 ? 0 : ((after.seconds - before.seconds) * 1000) / commits,
  };
}
