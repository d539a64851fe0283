import fs from "node:fs";
import type { Config } from "../core/config.js";
import { openStore } from "./index.js";
import { type SealReport, sealStoredSecrets } from "./seal.js";
import { checkSecretsKey, loadSecretBox, nextKeyFile, readOrCreateKeyFile, SecretBox } from "./secrets.js";

/**
 * Seals every stored env value with a new key; run with every gateway stopped.
 *
 * With SECRETS_KEY set, the operator chose the new key: SECRETS_KEY is the new one and
 * SECRETS_KEY_PREVIOUS the old one, and this re-seals (a gateway started so does the same).
 * With a key file, a new key is made: written to `<file>.next` first, every value re-sealed in
 * one transaction, then `.next` renamed over the key file. Cut short anywhere, nothing is lost:
 * before the commit the old key still opens everything; after it, the gateway (and a second run)
 * opens values sealed under `.next` too.
 */
export async function rotateSecrets(config: Config): Promise<SealReport & { keyFile: string | null }> {
  if (config.SECRETS_KEY) {
    if (!config.SECRETS_KEY_PREVIOUS)
      throw new Error("with SECRETS_KEY set, set SECRETS_KEY_PREVIOUS to the old key and SECRETS_KEY to the new one");
    const box = loadSecretBox(config).box;
    return { ...(await withStore(config, box, (store) => sealStoredSecrets(store, box))), keyFile: null };
  }
  const file = config.SECRETS_KEY_FILE;
  const { key: oldKey } = readOrCreateKeyFile(file);
  const next = nextKeyFile(file);
  // An earlier run cut short left its new key: finish with that one, since values may be sealed with it.
  const { key: newKey } = readOrCreateKeyFile(next);
  const older = config.SECRETS_KEY_PREVIOUS ? [oldKey, config.SECRETS_KEY_PREVIOUS] : [oldKey];
  const box = new SecretBox(newKey, older);
  const report = await withStore(config, box, (store) => sealStoredSecrets(store, box));
  fs.renameSync(next, file);
  return { ...report, keyFile: file };
}

async function withStore<T>(
  config: Config,
  box: SecretBox,
  work: (store: Awaited<ReturnType<typeof openStore>>) => Promise<T>,
): Promise<T> {
  const store = await openStore(config, box);
  try {
    const done = await work(store);
    await checkSecretsKey(store, box); // the gateways' key check names the new key from now on
    return done;
  } finally {
    await store.close();
  }
}
