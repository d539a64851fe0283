import fs from "node:fs";
import Database from "better-sqlite3";
import type { StoredEnd } from "../core/invocations.js";
import type { StartedRow } from "./contract.js";

/** A log write held on the node's disk until the database takes it: a row's start or its end. */
export type SpooledWrite = { kind: "start"; row: StartedRow } | { kind: "finish"; id: string; end: StoredEnd };

/**
 * Log writes held in a SQLite file in DATA_DIR while the database cannot be reached, in the order
 * they were made, and handed back in that order once it can. Each write is durable before the
 * call returns (WAL, synchronous=NORMAL: it survives the process). The file shrinks as writes are
 * taken out (auto_vacuum), so its size on disk is what it holds.
 */
export class Spool {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement<[string, string]>;
  private readonly head: Database.Statement<[number]>;
  private readonly remove: Database.Statement<[number]>;
  private readonly count: Database.Statement<[]>;

  constructor(
    private readonly file: string,
    private readonly maxBytes: number,
  ) {
    this.db = new Database(file);
    fs.chmodSync(file, 0o600);
    // Before the first table: auto_vacuum can only be chosen for an empty file.
    this.db.pragma("auto_vacuum = FULL");
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("journal_size_limit = 1048576");
    this.db.pragma("synchronous = NORMAL");
    this.db.exec("create table if not exists writes (seq integer primary key autoincrement, kind text not null, body text not null)");
    this.insert = this.db.prepare("insert into writes (kind, body) values (?, ?)");
    this.head = this.db.prepare("select seq, kind, body from writes order by seq limit ?");
    this.remove = this.db.prepare("delete from writes where seq <= ?");
    this.count = this.db.prepare("select count(*) as n from writes");
  }

  /**
   * Appends writes (all or none). It never refuses one: SPOOL_MAX_MB is kept by admitting no new
   * invocation while the spool is `full`, so the rows of those already admitted (their ends come
   * later) are always kept; it can pass the bound by what those few write.
   */
  append(writes: SpooledWrite[]): void {
    this.db.transaction(() => {
      for (const write of writes) {
        const { kind, ...body } = write;
        this.insert.run(kind, JSON.stringify(body));
      }
    })();
  }

  /** The oldest `limit` writes and the key to pass to `drop` once they are stored. */
  peek(limit: number): { writes: SpooledWrite[]; through: number } {
    const rows = this.head.all(limit) as { seq: number; kind: SpooledWrite["kind"]; body: string }[];
    return {
      writes: rows.map((row) => ({ kind: row.kind, ...JSON.parse(row.body) }) as SpooledWrite),
      through: rows.at(-1)?.seq ?? 0,
    };
  }

  /** Forgets the writes up to `through` (the database has them). */
  drop(through: number): void {
    this.remove.run(through);
  }

  get size(): number {
    return (this.count.get() as { n: number }).n;
  }

  /** The spool's files on disk, in bytes. */
  bytes(): number {
    return [this.file, `${this.file}-wal`].reduce((sum, f) => sum + (fs.statSync(f, { throwIfNoEntry: false })?.size ?? 0), 0);
  }

  /** Whether it holds SPOOL_MAX_MB or more: no new invocation should be admitted. */
  get full(): boolean {
    return this.bytes() > this.maxBytes;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
