import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENGINE, type Gateway, makeGateway, okResult, register, runScenarios } from "./harness.js";

let gw: Gateway;
let deployToken: string;

beforeAll(async () => {
  gw = await makeGateway();
  await register(gw, { name: "kept" });
  gw.runner.script = () => okResult({ body: Buffer.from("ok") });
  for (let i = 0; i < 3; i++) await gw.call("/fn/kept");
  const created = await gw.call("/api/tokens", { method: "POST", json: { name: "deployer", scopes: ["deploy", "logs:read"] } });
  deployToken = ((await created.json()) as { token: string }).token;
});
afterAll(() => gw.close());

/** Writes a download to a file under the gateway's data directory and opens it read-only. */
async function openDownload(res: Response): Promise<Database.Database> {
  const file = path.join(gw.dataDir, `download-${Math.random().toString(36).slice(2)}.db`);
  fs.writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  return new Database(file, { readonly: true, fileMustExist: true });
}

const leftovers = () => fs.readdirSync(gw.dataDir).filter((name) => name.startsWith(".backup-"));

describe.runIf(ENGINE === "sqlite")("GET /api/backup", () => {
  it("answers an admin with a consistent SQLite copy of the live database, and leaves no temp file", async () => {
    const res = await gw.call("/api/backup");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/vnd.sqlite3");
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="fngw-2030-01-01T00-00-00-000Z\.db"$/);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const length = Number(res.headers.get("content-length"));
    const copy = await openDownload(res);
    try {
      expect(fs.statSync(copy.name).size).toBe(length);
      expect(copy.prepare("PRAGMA integrity_check").pluck().get()).toBe("ok");
      expect(copy.prepare("SELECT name FROM functions").pluck().all()).toEqual(["kept"]);
      expect(copy.prepare("SELECT count(*) FROM invocations WHERE function_name = 'kept'").pluck().get()).toBe(3);
    } finally {
      await copy.close();
    }
    expect(leftovers()).toEqual([]);
  });

  it("copies while invocations keep being logged, and the copy holds what was logged before it was asked for", async () => {
    const during = Promise.all([gw.call("/api/backup"), ...Array.from({ length: 5 }, () => gw.call("/fn/kept"))]);
    const [backup, ...invoked] = await during;
    expect(invoked.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const copy = await openDownload(backup!);
    try {
      expect(copy.prepare("PRAGMA integrity_check").pluck().get()).toBe("ok");
      expect(copy.prepare("SELECT count(*) FROM invocations").pluck().get()).toBeGreaterThanOrEqual(3);
    } finally {
      await copy.close();
    }
  });

  it("makes one backup at a time: a second while one is being made gets 429 with Retry-After", async () => {
    const [first, second] = await Promise.all([gw.call("/api/backup"), gw.call("/api/backup")]);
    expect(first!.status).toBe(200);
    expect(second!.status).toBe(429);
    expect(second!.headers.get("retry-after")).toBe("5");
    expect(await second!.json()).toMatchObject({ error: { code: "backup_in_progress" } });
    await first!.arrayBuffer();
    expect((await gw.call("/api/backup")).status).toBe(200);
    expect(leftovers()).toEqual([]);
  });

  it("refuses a token without the admin scope (403), naming the scope", async () => {
    const res = await gw.call("/api/backup", { token: deployToken });
    expect(res.status).toBe(403);
    expect(JSON.stringify(await res.json())).toContain("admin");
  });

  runScenarios(
    () => gw,
    [{ name: "answers 401 without the token", url: "/api/backup", token: null, expectedStatus: 401, expectedError: "unauthorized" }],
  );
});

describe("GET /api/backup on PostgreSQL", () => {
  it.runIf(ENGINE === "postgres")("answers 501, naming pg_dump", async () => {
    const res = await gw.call("/api/backup");
    expect(res.status).toBe(501);
    expect(await res.json()).toMatchObject({ error: { code: "not_implemented", message: expect.stringContaining("pg_dump") } });
  });
});

describe("a backup directory left by a process that died mid-copy", () => {
  it("is removed when the gateway starts", async () => {
    const left = await makeGateway();
    try {
      fs.mkdirSync(path.join(left.dataDir, ".backup-abc123"));
      fs.writeFileSync(path.join(left.dataDir, ".backup-abc123", "gateway.db"), "half a copy");
      const restarted = await makeGateway({ DATA_DIR: left.dataDir });
      expect(fs.readdirSync(left.dataDir).filter((name) => name.startsWith(".backup-"))).toEqual([]);
      await restarted.close();
    } finally {
      await left.close();
    }
  });
});
