import { formatAudit } from '../../observability/audit-report.js';
import { openStore } from '../../store/index.js';
import type { AuditReport } from '../../store/types.js';
import { loadConfig, type Config } from '../config.js';
import { commandArgs, reportingErrors } from './args.js';

/** Audits the configured store from outside the server (which may be running). */
async function auditStore(config: Config, full: boolean): Promise<AuditReport> {
  if (config.store.backend === 'sqlite') {
    // Not through SqliteStore: that would take the writer lock a running server holds. A read
    // connection of its own, in WAL mode beside the server's; run synchronously, this process has nothing else to do.
    const { auditDatabase, openForAudit } = await import('../../store/sqlite/audit.js');
    const db = openForAudit(config.store.sqlite.file);
    try {
      return auditDatabase(db, { full });
    } finally {
      db.close();
    }
  }
  const store = await openStore(config.store);
  try {
    return await store.audit!({ full });
  } finally {
    await store.close();
  }
}

/**
 * `tally audit [--full] [--json]`: every mismatch on its own line, then a summary; exit code 1 when
 * anything was found, 0 when the store is clean.
 */
export async function auditCommand(argv: string[]): Promise<void> {
  const { on, rest } = commandArgs(argv, ['full', 'json']);
  const config = loadConfig(process.env, rest);
  await reportingErrors('audit', async () => {
    const report = await auditStore(config, on.has('full'));
    process.stdout.write(on.has('json') ? `${JSON.stringify(report)}\n` : formatAudit(report));
    if (report.mismatchCount > 0) process.exitCode = 1;
  });
}
