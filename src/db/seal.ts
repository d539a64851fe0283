import { and, eq } from "drizzle-orm";
import type { OpenedDatabase } from "./client.js";
import { functionVersions } from "./schema.js";
import type { SecretBox } from "./secrets.js";

export interface SealReport {
  /** Versions whose env was stored in clear (before sealing existed) and is now sealed. */
  sealed: number;
  /** Versions whose env was sealed with an older key and is now sealed with the current one. */
  resealed: number;
}

/**
 * Brings every stored env value under the current key: clear values of versions stored before
 * sealing existed are sealed, values sealed with an older key (SECRETS_KEY_PREVIOUS, a rotation's
 * `.next` key) are opened and sealed again. One transaction: all or nothing. When anything
 * changed, the database is vacuumed and its WAL truncated so that no page still holds an old
 * value (secure_delete zeroes what rows leave behind; VACUUM rewrites the rest).
 */
export function sealStoredSecrets(opened: OpenedDatabase, secrets: SecretBox): SealReport {
  const { db, sqlite } = opened;
  const report = db.transaction((tx) => {
    const counts = { sealed: 0, resealed: 0 };
    const rows = tx
      .select({
        name: functionVersions.functionName,
        version: functionVersions.version,
        env: functionVersions.env,
        sealed: functionVersions.envSealed,
      })
      .from(functionVersions)
      .all();
    for (const row of rows) {
      let clear: Record<string, string>;
      if (!row.sealed) {
        clear = row.env;
        counts.sealed++;
      } else if (Object.values(row.env).some((value) => !secrets.isCurrent(value))) {
        clear = secrets.openEnv(row.env, row.name, row.version);
        counts.resealed++;
      } else {
        continue;
      }
      tx.update(functionVersions)
        .set({ env: secrets.sealEnv(clear, row.name, row.version), envSealed: true })
        .where(and(eq(functionVersions.functionName, row.name), eq(functionVersions.version, row.version)))
        .run();
    }
    return counts;
  });
  if (report.sealed + report.resealed > 0 && sqlite.name !== ":memory:") {
    sqlite.exec("VACUUM");
    sqlite.pragma("wal_checkpoint(TRUNCATE)");
  }
  return report;
}
