import type { Store } from "./contract.js";
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
 * changed, the store is compacted so that no page still holds an old value.
 */
export async function sealStoredSecrets(store: Store, secrets: SecretBox): Promise<SealReport> {
  const report = { sealed: 0, resealed: 0 };
  await store.functions.rewriteEnvs(({ name, version, env, sealed }) => {
    let clear: Record<string, string>;
    if (!sealed) {
      clear = env;
      report.sealed++;
    } else if (Object.values(env).some((value) => !secrets.isCurrent(value))) {
      clear = secrets.openEnv(env, name, version);
      report.resealed++;
    } else {
      return null;
    }
    return secrets.sealEnv(clear, name, version);
  });
  if (report.sealed + report.resealed > 0) await store.compact();
  return report;
}
