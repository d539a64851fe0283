import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { NODE_LOST_MESSAGE } from "../core/invocations.js";
import { log } from "../core/log.js";
import type { Store } from "../store/contract.js";

/** How often the catalog and the tokens are compared with the database, whatever notifications said. */
const RESYNC_INTERVAL_MS = 5000;

/**
 * This gateway's node id: FLY_MACHINE_ID on Fly, else one generated at first start and kept in
 * DATA_DIR/node-id, so that a restarted gateway is the same node (and ends its own leftovers).
 */
export function nodeId(dataDir: string, machineId: string | undefined): string {
  if (machineId) return machineId;
  const file = path.join(dataDir, "node-id");
  try {
    fs.writeFileSync(file, `node-${crypto.randomBytes(6).toString("hex")}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  return fs.readFileSync(file, "utf8").trim();
}

export interface NodeLifeOptions {
  id: string;
  version: string;
  leaseMs: number;
  /** Invocations admitted here now (shown in /api/nodes). */
  inFlight: () => number;
  /** Compared with the database every few seconds, a safety net under the change notifications. */
  resync: () => Promise<void>;
}

/**
 * A gateway's life on a shared database: registered at start, a heartbeat every third of the
 * lease, and at each beat a look for peers whose lease ran out (their running invocations end as
 * `interrupted`, exactly once: the store claims each lost node in one transaction).
 */
export class NodeLife {
  private readonly timers: NodeJS.Timeout[] = [];
  private beating: Promise<void> | null = null;

  private constructor(
    private readonly store: Store,
    private readonly options: NodeLifeOptions,
  ) {}

  static async start(store: Store, options: NodeLifeOptions): Promise<NodeLife> {
    const life = new NodeLife(store, options);
    await store.nodes.register(options.id, options.version);
    const beat = setInterval(() => life.beat(), Math.max(250, Math.floor(options.leaseMs / 3)));
    const resync = setInterval(() => {
      options.resync().catch((err: unknown) => log.warn({ err }, "resync failed"));
    }, RESYNC_INTERVAL_MS);
    for (const timer of [beat, resync]) timer.unref();
    life.timers.push(beat, resync);
    return life;
  }

  /** One heartbeat and one look for lost peers; a beat still running (a slow database) is not doubled. */
  beat(): Promise<void> {
    this.beating ??= this.beatOnce().finally(() => {
      this.beating = null;
    });
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    try {
      await this.store.nodes.heartbeat(this.options.id, this.options.inFlight());
      for (const { node, interrupted } of await this.store.nodes.reapLost(this.options.leaseMs, NODE_LOST_MESSAGE)) {
        log.warn(
          `node ${node} missed its heartbeat for ${this.options.leaseMs} ms (NODE_LEASE_MS): ${interrupted} of its invocation(s) end as interrupted`,
        );
      }
    } catch (err) {
      log.debug({ err }, "heartbeat failed");
    }
  }

  /** Stops beating and records a clean stop (peers then never count this node as lost). */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await this.beating;
    try {
      await this.store.nodes.stopped(this.options.id);
    } catch (err) {
      log.warn({ err }, "could not record this node's stop");
    }
  }
}
