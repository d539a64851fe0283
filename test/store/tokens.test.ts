import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/db/client.js";
import { sha256, TokenStore } from "../../src/db/tokens.js";
import { checkBearer, provisionToken } from "../../src/http/middleware/auth.js";
import { databaseBeforeSealing } from "./legacy.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-tokens-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("the migration to scoped tokens", () => {
  it("keeps the token of a gateway from before: its hash becomes the admin token, and nothing new is printed", () => {
    const file = path.join(dir, "gateway.db");
    const token = "token-from-before-scopes-0123";
    databaseBeforeSealing(file, (sqlite) => {
      sqlite.prepare("INSERT INTO settings VALUES ('api_token_sha256', ?)").run(sha256(token).toString("hex"));
    });
    const opened = openDatabase(file);
    const store = new TokenStore(opened.db);
    expect(provisionToken(store, undefined).generated).toBeNull();
    const check = checkBearer(`Bearer ${token}`, store);
    expect(check.kind === "ok" && { id: check.token.id, scopes: check.token.scopes }).toEqual({ id: "root", scopes: ["admin"] });
    expect(opened.sqlite.prepare("SELECT count(*) FROM settings WHERE key = 'api_token_sha256'").pluck().get()).toBe(0);
    opened.close();
  });
});
