import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/core/config.js";
import { openDatabase } from "../../src/db/client.js";
import { FunctionStore } from "../../src/db/functions.js";
import { rotateSecrets } from "../../src/db/rotate.js";
import { sealStoredSecrets } from "../../src/db/seal.js";
import { keyId, loadSecretBox, nextKeyFile, SecretBox } from "../../src/db/secrets.js";
import { databaseBeforeSealing } from "./legacy.js";

const SECRET = "clear-secret-from-before-sealing-91c2";
const settings = {
  runtime: "python" as const,
  code: "x = 1\n",
  timeoutMs: 1000,
  memoryMb: 64,
  network: false,
  public: false,
  maxConcurrency: null,
  isolation: "invocation" as const,
  packages: [],
};

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-secrets-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const dbPath = () => path.join(dir, "gateway.db");
const fileBytesContain = (needle: string) =>
  [dbPath(), `${dbPath()}-wal`].some((f) => fs.existsSync(f) && fs.readFileSync(f).includes(Buffer.from(needle)));
const storedKeyIds = () => {
  const sqlite = new Database(dbPath(), { readonly: true });
  const rows = sqlite.prepare("SELECT env FROM function_versions").all() as { env: string }[];
  sqlite.close();
  return new Set(rows.flatMap((row) => Object.values(JSON.parse(row.env) as Record<string, string>).map((v) => v.split(":")[1])));
};

/** A database as the gateway wrote it before env values were sealed: env in clear. */
function legacyDatabase(): void {
  databaseBeforeSealing(dbPath(), (sqlite) => {
    sqlite.prepare("INSERT INTO functions VALUES ('old', 2, 1, 1)").run();
    const insert = sqlite.prepare(
      "INSERT INTO function_versions (function_name, version, runtime, code, timeout_ms, memory_mb, network, env, public, created_at) VALUES ('old', ?, 'python', 'x = 1', 1000, 64, 0, ?, 0, 1)",
    );
    insert.run(1, JSON.stringify({ API_KEY: SECRET }));
    insert.run(2, JSON.stringify({ API_KEY: SECRET, OTHER: "o" }));
  });
  expect(fileBytesContain(SECRET)).toBe(true);
}

describe("the migration to sealed env values", () => {
  it("seals every clear value at the first start, leaving no clear copy in the database's files", () => {
    legacyDatabase();
    const config = loadConfig({ DATA_DIR: dir });
    const { box } = loadSecretBox(config);
    const opened = openDatabase(config.DB_PATH);
    expect(sealStoredSecrets(opened, box)).toEqual({ sealed: 2, resealed: 0 });
    expect(new FunctionStore(opened.db, box).get("old")?.env).toEqual({ API_KEY: SECRET, OTHER: "o" });
    expect(new FunctionStore(opened.db, box).getVersion("old", 1)?.env).toEqual({ API_KEY: SECRET });
    expect(sealStoredSecrets(opened, box)).toEqual({ sealed: 0, resealed: 0 }); // once
    opened.close();
    expect(fileBytesContain(SECRET)).toBe(false);
    expect(storedKeyIds()).toEqual(new Set([box.currentKeyId]));
  });
});

describe("the key", () => {
  it("is created 0600 in DATA_DIR/secrets.key at first start, and read back after", () => {
    const config = loadConfig({ DATA_DIR: dir });
    const first = loadSecretBox(config);
    expect(first.createdKeyFile).toBe(path.join(dir, "secrets.key"));
    expect(fs.statSync(first.createdKeyFile!).mode & 0o777).toBe(0o600);
    const again = loadSecretBox(config);
    expect(again.createdKeyFile).toBeNull();
    expect(again.box.currentKeyId).toBe(first.box.currentKeyId);
  });

  it("is refused from a key file others may read", () => {
    const file = path.join(dir, "secrets.key");
    fs.writeFileSync(file, crypto.randomBytes(32).toString("base64"), { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    expect(() => loadSecretBox(loadConfig({ DATA_DIR: dir }))).toThrow(/readable by others.*chmod 600/);
  });

  it.each([["not base64 !"], [crypto.randomBytes(16).toString("base64")]])("SECRETS_KEY=%j is refused", (value) => {
    expect(() => loadConfig({ DATA_DIR: dir, SECRETS_KEY: value })).toThrow(/SECRETS_KEY must be the base64 of 32 bytes/);
  });

  it("binds a value to its function, version and variable: moved anywhere else, it does not open", () => {
    const box = new SecretBox(crypto.randomBytes(32));
    const sealed = box.seal(SECRET, { functionName: "f", version: 1, variable: "A" });
    expect(box.open(sealed, { functionName: "f", version: 1, variable: "A" })).toBe(SECRET);
    for (const place of [
      { functionName: "g", version: 1, variable: "A" },
      { functionName: "f", version: 2, variable: "A" },
      { functionName: "f", version: 1, variable: "B" },
    ]) {
      expect(() => box.open(sealed, place)).toThrow(/does not open/);
    }
    expect(() => new SecretBox(crypto.randomBytes(32)).open(sealed, { functionName: "f", version: 1, variable: "A" })).toThrow(
      /key this gateway does not have/,
    );
  });
});

describe("rotation", () => {
  function storeOne(box: SecretBox): void {
    const opened = openDatabase(dbPath());
    new FunctionStore(opened.db, box).create("f", { ...settings, env: { API_KEY: SECRET } });
    opened.close();
  }
  const envWith = (box: SecretBox) => {
    const opened = openDatabase(dbPath());
    const env = new FunctionStore(opened.db, box).get("f")?.env;
    opened.close();
    return env;
  };

  it("npm run rotate-secrets: a new key file, every value sealed again with it", () => {
    const config = loadConfig({ DATA_DIR: dir });
    const before = loadSecretBox(config).box;
    storeOne(before);
    const report = rotateSecrets(config);
    expect(report).toEqual({ sealed: 0, resealed: 1, keyFile: config.SECRETS_KEY_FILE });
    expect(fs.existsSync(nextKeyFile(config.SECRETS_KEY_FILE))).toBe(false);
    const after = loadSecretBox(config).box;
    expect(after.currentKeyId).not.toBe(before.currentKeyId);
    expect(storedKeyIds()).toEqual(new Set([after.currentKeyId]));
    expect(envWith(after)).toEqual({ API_KEY: SECRET });
    expect(() => envWith(new SecretBox(crypto.randomBytes(32)))).toThrow(/key this gateway does not have/);
  });

  it("a start with SECRETS_KEY_PREVIOUS seals every value under the old key with SECRETS_KEY", () => {
    const oldKey = crypto.randomBytes(32);
    const newKey = crypto.randomBytes(32);
    storeOne(new SecretBox(oldKey));
    const config = loadConfig({ DATA_DIR: dir, SECRETS_KEY: newKey.toString("base64"), SECRETS_KEY_PREVIOUS: oldKey.toString("base64") });
    const opened = openDatabase(dbPath());
    expect(sealStoredSecrets(opened, loadSecretBox(config).box)).toEqual({ sealed: 0, resealed: 1 });
    opened.close();
    expect(storedKeyIds()).toEqual(new Set([keyId(newKey)]));
    expect(envWith(new SecretBox(newKey))).toEqual({ API_KEY: SECRET });
  });
});
