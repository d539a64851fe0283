import { and, asc, eq, isNull, lt } from "drizzle-orm";
import type { NodeRecord, NodeRecords } from "../contract.js";
import type { Db } from "./client.js";
import type { SqliteInvocations } from "./invocations.js";
import { nodes } from "./schema.js";

/** Gateways on this database: one on SQLite (the data dir's lock sees to it), recorded as on PostgreSQL. */
export class SqliteNodes implements NodeRecords {
  constructor(
    private readonly db: Db,
    private readonly invocations: SqliteInvocations,
  ) {}

  async register(id: string, version: string): Promise<void> {
    const now = Date.now();
    const row = { id, version, startedAt: now, heartbeatAt: now, inFlight: 0, stoppedAt: null, lostAt: null };
    this.db.insert(nodes).values(row).onConflictDoUpdate({ target: nodes.id, set: row }).run();
  }

  async heartbeat(id: string, inFlight: number): Promise<void> {
    this.db.update(nodes).set({ heartbeatAt: Date.now(), inFlight, lostAt: null }).where(eq(nodes.id, id)).run();
  }

  async stopped(id: string): Promise<void> {
    this.db.update(nodes).set({ stoppedAt: Date.now(), inFlight: 0 }).where(eq(nodes.id, id)).run();
  }

  async list(): Promise<NodeRecord[]> {
    return this.db.select().from(nodes).orderBy(asc(nodes.startedAt), asc(nodes.id)).all();
  }

  async reapLost(leaseMs: number, message: string): Promise<{ node: string; interrupted: number }[]> {
    const now = Date.now();
    return this.db.transaction((tx) => {
      const lost = tx
        .update(nodes)
        .set({ lostAt: now })
        .where(and(lt(nodes.heartbeatAt, now - leaseMs), isNull(nodes.stoppedAt), isNull(nodes.lostAt)))
        .returning({ id: nodes.id })
        .all();
      return lost.map(({ id }) => ({ node: id, interrupted: this.invocations.interruptRunning([id], message) }));
    });
  }
}
