import { EventEmitter } from "node:events";
import type { InvocationSummary } from "../db/invocations.js";

/** Streams open at once; each holds a socket, a listener and a bounded queue. */
export const MAX_SUBSCRIBERS = 256;

/** Finished invocations (log rows as listed, without stdout/stderr) to whoever listens: the live stream. */
export class InvocationFeed {
  private readonly emitter = new EventEmitter().setMaxListeners(MAX_SUBSCRIBERS + 1);

  get subscribers(): number {
    return this.emitter.listenerCount("invocation");
  }

  publish(row: InvocationSummary): void {
    if (this.subscribers > 0) this.emitter.emit("invocation", row);
  }

  subscribe(listener: (row: InvocationSummary) => void): () => void {
    this.emitter.on("invocation", listener);
    return () => this.emitter.off("invocation", listener);
  }
}
