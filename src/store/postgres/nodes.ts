import { and, asc, eq, isNull, lt, sql } from "drizzle-orm";
import type { NodeRecord, NodeRecords } from "../contract.js";
import { type Db, transaction } from "./client.js";
import type { PostgresInvocations } from "./invocations.js";
import { nodes } from "./schema.js";

/** The database's clock in epoch ms: heartbeats and leases are compared on one clock, not each gateway's. */
const dbNow = sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`;

export class PostgresNodes implements NodeRecords {
  constructor(
    private readonly db: Db,
    private readonly invocations: PostgresInvocations,
  ) {}

  async register(id: string, version: string): Promise<void> {
    const row = { id, version, startedAt: dbNow, heartbeatAt: dbNow, inFlight: 0, stoppedAt: null, lostAt: null };
    await this.db.insert(nodes).values(row).onConflictDoUpdate({ target: nodes.id, set: row });
  }

  async heartbeat(id: string, inFlight: number): Promise<void> {
    await this.db.update(nodes).set({ heartbeatAt: dbNow, inFlight, lostAt: null }).where(eq(nodes.id, id));
  }

  async stopped(id: string): Promise<void> {
    await this.db.update(nodes).set({ stoppedAt: dbNow, inFlight: 0 }).where(eq(nodes.id, id));
  }

  async list(): Promise<NodeRecord[]> {
    return this.db.select().from(nodes).orderBy(asc(nodes.startedAt), asc(nodes.id));
  }

  async reapLost(leaseMs: number, message: string): Promise<{ node: string; interrupted: number }[]> {
    return transaction(this.db, async (tx) => {
      // Each lost node's row is claimed by the first peer to see it (SKIP LOCKED: the others pass it by).
      const lost = await tx
        .select({ id: nodes.id })
        .from(nodes)
        .where(and(lt(nodes.heartbeatAt, sql`${dbNow} - ${leaseMs}`), isNull(nodes.stoppedAt), isNull(nodes.lostAt)))
        .for("update", { skipLocked: true });
      const reaped: { node: string; interrupted: number }[] = [];
      for (const { id } of lost) {
        await tx.update(nodes).set({ lostAt: dbNow }).where(eq(nodes.id, id));
        reaped.push({ node: id, interrupted: await this.invocations.interruptRunning(tx, id, message) });
      }
      return reaped;
    });
  }
}
