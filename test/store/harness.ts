import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, beforeEach, inject } from "vitest";
import { createDatabase } from "../../scripts/postgres.js";
import type { StoredEnd } from "../../src/core/invocations.js";
import type { FunctionSettings } from "../../src/core/settings.js";
import type { Change, StartedRow, Store } from "../../src/store/contract.js";
import { openStore } from "../../src/store/index.js";
import { SecretBox } from "../../src/store/secrets.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite/index.js";

/**
 * The store tests' helpers: a store of the engine under test (the `unit` project runs SQLite, the
 * `postgres` project the same files on a real server), raw SQL to check what it wrote, and
 * builders for log rows and function settings.
 */

/** The engine under test: the `postgres` vitest project sets TEST_STORE=postgres. */
export const ENGINE: "sqlite" | "postgres" = process.env.TEST_STORE === "postgres" ? "postgres" : "sqlite";

/** A new, empty database on the project's PostgreSQL server; undefined on SQLite (the file lives in DATA_DIR). */
export async function testDatabaseUrl(): Promise<string | undefined> {
  return ENGINE === "postgres" ? createDatabase(inject("postgresUrl")) : undefined;
}

/** Runs SQL written for both engines: `?` placeholders, snake_case columns; rows as the driver gives them. */
export type RawSql = (text: string, ...params: unknown[]) => Promise<Record<string, unknown>[]>;

/** Raw SQL on the SQLite connection a store holds. */
export function sqliteSql(store: SqliteStore): RawSql {
  return async (text, ...params) => {
    const statement = store.connection.sqlite.prepare(text);
    if (!statement.reader) {
      statement.run(...params);
      return [];
    }
    return statement.all(...params) as Record<string, unknown>[];
  };
}

/** Raw SQL on a connection of its own to the PostgreSQL database at `url`; `end` closes it. */
export function postgresSql(url: string): RawSql & { end(): Promise<void> } {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  // A server stopped or restarted by a test drops the idle connection: the next query connects again.
  pool.on("error", () => {});
  const run = async (text: string, ...params: unknown[]) => {
    let n = 0;
    // Without parameters the text goes as it is (a `?` there is PostgreSQL's, e.g. jsonb's operator).
    const query = params.length === 0 ? text : text.replace(/\?/g, () => `$${++n}`);
    return (await pool.query(query, params)).rows as Record<string, unknown>[];
  };
  return Object.assign(run, { end: () => pool.end() });
}

/** A key for the tests' stores (values sealed with it open with it only). */
export const newSecretBox = (): SecretBox => new SecretBox(crypto.randomBytes(32));

/**
 * A database of the engine under test, fresh for each test (`useTestStore`): a SQLite file in a
 * temporary DATA_DIR, or a new database on the project's PostgreSQL server.
 */
export class TestDatabase {
  /** The test's DATA_DIR (the SQLite file, a spool, key files). */
  dir = "";
  /** The PostgreSQL database's URL; undefined on SQLite. */
  url: string | undefined;
  /** The key the test's store seals with (`box`). */
  key: Buffer = crypto.randomBytes(32);
  box: SecretBox = new SecretBox(this.key);
  private opened: Store[] = [];
  private raw: (RawSql & { end(): Promise<void> }) | null = null;
  private current: Store | null = null;

  get file(): string {
    return path.join(this.dir, "gateway.db");
  }

  /** The store of the test (opened before it). */
  get store(): Store {
    if (!this.current) throw new Error("no store is open");
    return this.current;
  }

  async setUp(): Promise<void> {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-store-"));
    this.url = await testDatabaseUrl();
    this.key = crypto.randomBytes(32);
    this.box = new SecretBox(this.key);
    this.current = await this.open();
  }

  /** Another store on the same database, as another gateway (or a restarted one) opens it; closed after the test. */
  async open(box: SecretBox = this.box): Promise<Store> {
    const store = this.url
      ? await openStore({ DATABASE_URL: this.url, DB_PATH: this.file, DATABASE_POOL_SIZE: 4 }, box)
      : openSqliteStore(this.file, box);
    this.opened.push(store);
    return store;
  }

  /** Closes every store and moves to a new database no store has opened yet (PostgreSQL: migrations not applied). */
  async useFreshDatabase(): Promise<void> {
    await this.closeAll();
    this.url = await testDatabaseUrl();
  }

  /** Closes the test's store and opens it again: what a gateway's restart does. */
  async reopen(box: SecretBox = this.box): Promise<Store> {
    await this.close(this.store);
    this.current = await this.open(box);
    return this.current;
  }

  /**
   * The stores `n` gateways sharing this database use. On PostgreSQL, n stores of their own (the
   * first the test's); SQLite has one gateway per file (DATA_DIR's lock), so it is the test's store n times.
   */
  async gateways(n: number): Promise<Store[]> {
    const stores = [this.store];
    for (let i = 1; i < n; i++) stores.push(ENGINE === "postgres" ? await this.open() : this.store);
    return stores;
  }

  /** Raw SQL on the database, for what the contract does not show. */
  readonly sql: RawSql = (text, ...params) => {
    if (this.url) {
      this.raw ??= postgresSql(this.url);
      return this.raw(text, ...params);
    }
    return sqliteSql(this.store as SqliteStore)(text, ...params);
  };

  /** The first column of the first row, as a number (counts come back as text from PostgreSQL). */
  async number(text: string, ...params: unknown[]): Promise<number> {
    const [row] = await this.sql(text, ...params);
    return Number(row ? Object.values(row)[0] : Number.NaN);
  }

  /** The first column of every row. */
  async column(text: string, ...params: unknown[]): Promise<unknown[]> {
    return (await this.sql(text, ...params)).map((row) => Object.values(row)[0]);
  }

  async close(store: Store): Promise<void> {
    this.opened = this.opened.filter((s) => s !== store);
    await store.close();
  }

  private async closeAll(): Promise<void> {
    await this.raw?.end();
    this.raw = null;
    for (const store of this.opened.splice(0)) await store.close();
    this.current = null;
  }

  async tearDown(): Promise<void> {
    await this.closeAll();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A fresh database for each test of the file, closed and removed after it. */
export function useTestStore(): TestDatabase {
  const db = new TestDatabase();
  beforeEach(() => db.setUp());
  afterEach(() => db.tearDown());
  return db;
}

/** 2030-01-01: the start of the tests' clock. */
export const T0 = Date.parse("2030-01-01T00:00:00Z");
export const DAY = 24 * 3600_000;

let started = 0;

/** A row's start as the log writer hands it to the store; ids are unique across the run. */
export function startRow(overrides: Partial<StartedRow> = {}): StartedRow {
  started++;
  return {
    id: `inv-${process.pid}-${started}-${crypto.randomBytes(3).toString("hex")}`,
    functionName: "f",
    version: 1,
    requestBytes: 0,
    method: "GET",
    path: "/",
    node: "node-a",
    startedAt: T0,
    ...overrides,
  };
}

/** An end as stored (output already cut to the log's cap). */
export function endOf(overrides: Partial<StoredEnd> = {}): StoredEnd {
  return {
    status: "ok",
    durationMs: 5,
    firstByteMs: null,
    exitCode: 0,
    signal: null,
    httpStatus: 200,
    responseBytes: 2,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    stdoutDroppedBytes: 0,
    stderrDroppedBytes: 0,
    error: null,
    blockedSyscall: null,
    deniedSyscalls: null,
    ...overrides,
  };
}

/** Starts one row; returns its id and key. */
export async function startOne(store: Store, overrides: Partial<StartedRow> = {}): Promise<{ id: string; seq: number; startedAt: number }> {
  const [written] = await store.invocations.start([startRow(overrides)]);
  if (!written) throw new Error("the start was not written");
  return written;
}

/** Starts and finishes one row; returns its id, key and place in the finish order. */
export async function runOne(
  store: Store,
  start: Partial<StartedRow> = {},
  end: Partial<StoredEnd> = {},
): Promise<{ id: string; seq: number; finishedSeq: number }> {
  const { id, seq } = await startOne(store, start);
  const [finishedSeq] = await store.invocations.finish([{ id, end: endOf(end) }]);
  if (finishedSeq == null) throw new Error("the end was not written");
  return { id, seq, finishedSeq };
}

/** A function's settings, with sensible defaults. */
export function settingsOf(overrides: Partial<FunctionSettings> = {}): FunctionSettings {
  return {
    runtime: "python",
    code: 'def handler(request):\n    return {"hello": "world"}\n',
    timeoutMs: 1000,
    memoryMb: 64,
    network: false,
    env: {},
    public: false,
    maxConcurrency: null,
    packages: [],
    isolation: "invocation",
    retries: 2,
    maxEventAgeS: 21_600,
    schedules: [],
    ...overrides,
  };
}

/** Resolves once `check` holds, polling every 10 ms; rejects with `what` after `ms`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What a subscriber to a store's change channel has heard. */
export interface Heard {
  changes: Change[];
  gaps: number;
  stop(): void;
}

/**
 * Subscribes to `listener`'s change channel and returns once it hears `writer`'s writes: LISTEN
 * on PostgreSQL takes effect a moment after the call, so markers (a session ended, which nobody
 * holds) are written until the newest one arrives. Changes reach a listener in commit order, so
 * every earlier marker has arrived by then (or never will); they are forgotten, and so is a gap
 * reported as listening began.
 */
export async function listenTo(listener: Store, writer: Store = listener): Promise<Heard> {
  const heard: Heard = { changes: [], gaps: 0, stop: () => {} };
  heard.stop = listener.changes.subscribe(
    (change) => heard.changes.push(change),
    () => heard.gaps++,
  );
  await eventually(async () => {
    const marker = `listening-${crypto.randomBytes(4).toString("hex")}`;
    await writer.sessions.delete(marker);
    const deadline = Date.now() + 100;
    while (Date.now() < deadline) {
      if (heard.changes.some((c) => c.kind === "session" && c.key === marker)) return true;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return false;
  }, "the change channel to listen");
  // Starting to listen may count as a gap (PostgreSQL: what was sent before LISTEN took effect is missed).
  heard.changes.length = 0;
  heard.gaps = 0;
  return heard;
}

/** The writes a log spool file holds, oldest first, read by a connection of its own (what a new process would find). */
export function spooledWrites(file: string): { kind: string; id: string }[] {
  const spool = new Database(file, { readonly: true });
  try {
    const rows = spool.prepare("select kind, body from writes order by seq").all() as { kind: string; body: string }[];
    return rows.map(({ kind, body }) => {
      const parsed = JSON.parse(body) as { id?: string; row?: { id: string } };
      return { kind, id: parsed.row?.id ?? parsed.id ?? "" };
    });
  } finally {
    spool.close();
  }
}
