import path from "node:path";
import { INTERRUPTED_MESSAGE } from "../core/invocations.js";
import type { Store } from "../store/contract.js";
import { InvocationLogWriter } from "../store/log-writer.js";
import { Spool } from "../store/spool.js";
import { InvocationFeed } from "./feed.js";
import { FunctionCatalog } from "./functions.js";
import { NodeLife, nodeId } from "./node.js";
import { TokenRegistry } from "./tokens.js";

export interface ClusterOptions {
  dataDir: string;
  /** FLY_MACHINE_ID, when the platform gives one. */
  machineId?: string;
  /** The gateway's version, shown in /api/nodes. */
  version: string;
  leaseMs: number;
  /** LOG_OUTPUT_MAX_BYTES. */
  maxOutputBytes: number;
  /** SPOOL_MAX_MB in bytes. */
  spoolMaxBytes: number;
  /** Invocations admitted on this gateway now. */
  inFlight: () => number;
  now?: () => number;
}

/** What one gateway keeps of the shared state, and its part in the cluster: id, heartbeat, caches kept fresh, the log's writer and tail. */
export interface Cluster {
  node: string;
  /** How many of its own invocations this node found still `running` when it joined (a crash), now `interrupted`. */
  interruptedAtStart: number;
  functions: FunctionCatalog;
  tokens: TokenRegistry;
  log: InvocationLogWriter;
  feed: InvocationFeed;
  /** Stops the heartbeat (recording a clean stop) and the caches' listening; the log's pending writes are flushed first. */
  leave(): Promise<void>;
}

/**
 * Joins the gateways on `store`: takes this node's id, hands back log rows a crash left in the
 * spool, ends this node's own leftover `running` rows as `interrupted` (what it was running when
 * it last stopped), loads the caches and starts the heartbeat.
 */
export async function joinCluster(store: Store, options: ClusterOptions): Promise<Cluster> {
  const node = nodeId(options.dataDir, options.machineId);
  const spool = store.remote ? new Spool(path.join(options.dataDir, "spool.db"), options.spoolMaxBytes) : null;
  const log = new InvocationLogWriter(store, {
    node,
    maxOutputBytes: options.maxOutputBytes,
    spool,
    now: options.now,
  });
  await log.drained();
  const interruptedAtStart = await store.invocations.markInterrupted(node, INTERRUPTED_MESSAGE);
  const functions = await FunctionCatalog.load(store);
  const tokens = await TokenRegistry.load(store, options.now);
  const feed = new InvocationFeed(store.invocations);
  const life = await NodeLife.start(store, {
    id: node,
    version: options.version,
    leaseMs: options.leaseMs,
    inFlight: options.inFlight,
    resync: async () => {
      await Promise.all([functions.resync(), tokens.resync()]);
    },
  });
  return {
    node,
    interruptedAtStart,
    functions,
    tokens,
    log,
    feed,
    async leave() {
      await log.flush();
      await life.stop();
      functions.close();
      tokens.close();
      log.close();
      spool?.close();
    },
  };
}
