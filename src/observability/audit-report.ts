import type { AuditReport } from '../store/types.js';

/** The one-line summary of an audit, as the CLI prints it and the server logs it. */
export function auditSummary(report: AuditReport): string {
  const found = report.mismatchCount === 0 ? 'no mismatches' : `${report.mismatchCount} mismatch${report.mismatchCount === 1 ? '' : 'es'}`;
  const bounds = report.boundsOnly === 0 ? '' : ` (${report.boundsOnly} pruned before Tally kept count: counts checked as lower bounds)`;
  return `${report.devices} devices, ${report.readings} readings checked${bounds} in ${(report.durationMs / 1000).toFixed(2)} s; ${report.storeCheck}; ${found}`;
}

/** The audit's text report: a line per mismatch (device first), then the summary. */
export function formatAudit(report: AuditReport): string {
  const lines = report.mismatches.map((m) => `mismatch ${m.deviceId === null ? 'in the store' : `device ${JSON.stringify(m.deviceId)}`}: ${m.problem}`);
  const unlisted = report.mismatchCount - report.mismatches.length;
  if (unlisted > 0) lines.push(`... and ${unlisted} more mismatches not listed`);
  lines.push(`tally audit: ${auditSummary(report)}`);
  return `${lines.join('\n')}\n`;
}
