import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/core/config.js";
import type { Store } from "../../src/store/contract.js";
import { rotateSecrets } from "../../src/store/rotate.js";
import { sealStoredSecrets } from "../../src/store/seal.js";
import { checkSecretsKey, keyId, loadSecretBox, nextKeyFile, SecretBox } from "../../src/store/secrets.js";
import { newSecretBox, settingsOf, useTestStore } from "./harness.js";

// Functions' env values at rest: sealed in the database, rotated to a new key, and one key for
// every gateway on a database.

const SECRET = "clear-secret-91c2-value";
const db = useTestStore();

/** Every stored env, as the database holds it (text on SQLite, jsonb on PostgreSQL). */
async function storedEnvs(): Promise<Record<string, string>[]> {
  const rows = await db.column("select env from function_versions order by function_name, version");
  return rows.map((env) => (typeof env === "string" ? JSON.parse(env) : env) as Record<string, string>);
}
/** The ids of the keys the stored values were sealed with. */
const storedKeyIds = async () => new Set((await storedEnvs()).flatMap((env) => Object.values(env).map((v) => v.split(":")[1])));

/** The gateway's configuration on the test's database, with `env` besides. */
const configWith = (env: Record<string, string> = {}) =>
  loadConfig({ DATA_DIR: db.dir, ...(db.url ? { DATABASE_URL: db.url } : {}), ...env });

async function storeOne(store: Store): Promise<void> {
  await store.functions.create("f", settingsOf({ env: { API_KEY: SECRET } }), null);
  await store.functions.addVersion("f", settingsOf({ env: { API_KEY: SECRET, OTHER: "o" } }), null, true);
}

describe("env values at rest", () => {
  it("are sealed in the database, with the store's key, and open as they are read", async () => {
    await storeOne(db.store);
    const stored = await storedEnvs();
    expect(JSON.stringify(stored)).not.toContain(SECRET);
    for (const env of stored) for (const value of Object.values(env)) expect(value).toMatch(new RegExp(`^fngw1:${db.box.currentKeyId}:`));
    expect((await db.store.functions.current("f"))?.env).toEqual({ API_KEY: SECRET, OTHER: "o" });
    expect((await db.store.functions.version("f", 1))?.env).toEqual({ API_KEY: SECRET });
  });

  it("do not open for a store with another key", async () => {
    await storeOne(db.store);
    const other = await db.reopen(newSecretBox());
    await expect(other.functions.current("f")).rejects.toThrow(/key this gateway does not have/);
  });
});

describe("rotation", () => {
  it("a start with SECRETS_KEY_PREVIOUS seals every value under the old key with SECRETS_KEY, once", async () => {
    await storeOne(db.store);
    const newKey = crypto.randomBytes(32);
    const box = new SecretBox(newKey, [db.key]);
    const store = await db.reopen(box);
    expect(await sealStoredSecrets(store, box)).toEqual({ sealed: 0, resealed: 2 });
    expect(await storedKeyIds()).toEqual(new Set([keyId(newKey)]));
    expect((await store.functions.current("f"))?.env).toEqual({ API_KEY: SECRET, OTHER: "o" });
    expect(await sealStoredSecrets(store, box)).toEqual({ sealed: 0, resealed: 0 });
    const withNewKeyOnly = await db.reopen(new SecretBox(newKey));
    expect((await withNewKeyOnly.functions.version("f", 1))?.env).toEqual({ API_KEY: SECRET });
  });

  it("npm run rotate-secrets: a new key file, every value sealed again with it", async () => {
    const config = configWith();
    const before = loadSecretBox(config).box;
    await storeOne(await db.reopen(before));
    expect(await rotateSecrets(config)).toEqual({ sealed: 0, resealed: 2, keyFile: config.SECRETS_KEY_FILE });
    expect(fs.existsSync(nextKeyFile(config.SECRETS_KEY_FILE))).toBe(false);
    const after = loadSecretBox(config).box;
    expect(after.currentKeyId).not.toBe(before.currentKeyId);
    expect(await storedKeyIds()).toEqual(new Set([after.currentKeyId]));
    expect((await (await db.reopen(after)).functions.current("f"))?.env).toEqual({ API_KEY: SECRET, OTHER: "o" });
  });

  it("rotate-secrets with SECRETS_KEY needs SECRETS_KEY_PREVIOUS, and then re-seals with SECRETS_KEY", async () => {
    const oldKey = crypto.randomBytes(32);
    const newKey = crypto.randomBytes(32);
    await storeOne(await db.reopen(new SecretBox(oldKey)));
    await expect(rotateSecrets(configWith({ SECRETS_KEY: newKey.toString("base64") }))).rejects.toThrow(/SECRETS_KEY_PREVIOUS/);
    const config = configWith({ SECRETS_KEY: newKey.toString("base64"), SECRETS_KEY_PREVIOUS: oldKey.toString("base64") });
    expect(await rotateSecrets(config)).toEqual({ sealed: 0, resealed: 2, keyFile: null });
    expect(await storedKeyIds()).toEqual(new Set([keyId(newKey)]));
  });
});

describe("one key for every gateway on a database", () => {
  it("records the first gateway's key, and accepts a gateway started with the same one", async () => {
    await checkSecretsKey(db.store, db.box);
    expect(await db.store.settings.get("secrets_key_id")).toBe(db.box.currentKeyId);
    const [, second] = await db.gateways(2);
    await checkSecretsKey(second!, new SecretBox(db.key));
  });

  it("refuses a gateway started with another key, saying so", async () => {
    await checkSecretsKey(db.store, db.box);
    const stranger = newSecretBox();
    const error = await checkSecretsKey(db.store, stranger).then(
      () => null,
      (e: Error) => e,
    );
    expect(error?.message).toMatch(
      new RegExp(
        `secrets key \\(id ${stranger.currentKeyId}\\) is not the one the database's values are sealed with \\(id ${db.box.currentKeyId}\\)`,
      ),
    );
    expect(error?.message).toMatch(/every gateway on one database needs the same SECRETS_KEY/);
    expect(await db.store.settings.get("secrets_key_id")).toBe(db.box.currentKeyId);
  });

  it("accepts a gateway that rotated (the recorded key is its previous one), and then refuses the old key", async () => {
    await checkSecretsKey(db.store, db.box);
    const rotated = new SecretBox(crypto.randomBytes(32), [db.key]);
    await checkSecretsKey(db.store, rotated);
    expect(await db.store.settings.get("secrets_key_id")).toBe(rotated.currentKeyId);
    await checkSecretsKey(db.store, rotated); // again, as every other gateway restarted with it does
    await expect(checkSecretsKey(db.store, db.box)).rejects.toThrow(/is not the one the database's values are sealed with/);
  });
});

describe("the key", () => {
  it("is created 0600 in DATA_DIR/secrets.key at first start, and read back after", () => {
    const config = configWith();
    const first = loadSecretBox(config);
    expect(first.createdKeyFile).toBe(path.join(db.dir, "secrets.key"));
    expect(fs.statSync(first.createdKeyFile!).mode & 0o777).toBe(0o600);
    const again = loadSecretBox(config);
    expect(again.createdKeyFile).toBeNull();
    expect(again.box.currentKeyId).toBe(first.box.currentKeyId);
  });

  it("is refused from a key file others may read", () => {
    const file = path.join(db.dir, "secrets.key");
    fs.writeFileSync(file, crypto.randomBytes(32).toString("base64"), { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    expect(() => loadSecretBox(configWith())).toThrow(/readable by others.*chmod 600/);
  });

  it.each([["not base64 !"], [crypto.randomBytes(16).toString("base64")]])("SECRETS_KEY=%j is refused", (value) => {
    expect(() => configWith({ SECRETS_KEY: value })).toThrow(/SECRETS_KEY must be the base64 of 32 bytes/);
  });

  it("binds a value to its function, version and variable: moved anywhere else, it does not open", () => {
    const box = newSecretBox();
    const sealed = box.seal(SECRET, { functionName: "f", version: 1, variable: "A" });
    expect(box.open(sealed, { functionName: "f", version: 1, variable: "A" })).toBe(SECRET);
    for (const place of [
      { functionName: "g", version: 1, variable: "A" },
      { functionName: "f", version: 2, variable: "A" },
      { functionName: "f", version: 1, variable: "B" },
    ]) {
      expect(() => box.open(sealed, place)).toThrow(/does not open/);
    }
    expect(() => newSecretBox().open(sealed, { functionName: "f", version: 1, variable: "A" })).toThrow(/key this gateway does not have/);
  });
});
