import type { InvocationSummary } from "../core/invocations.js";
import { log } from "../core/log.js";
import type { InvocationRecords } from "../store/contract.js";

/** Streams open at once; each holds a socket, a listener and a bounded queue. */
export const MAX_SUBSCRIBERS = 256;

/** How often the log is read for rows that finished, while anyone listens: rows of other gateways arrive this late at most. */
const POLL_MS = 250;
/** Rows read per poll. */
const PAGE = 1000;

type Listener = (row: InvocationSummary) => void;

/**
 * Finished invocations, in the log's finish order, to whoever listens (the live stream): every
 * gateway's, since it reads the shared log. It reads only while someone listens, from where the
 * log stood when the first listener came, and at once when this gateway has just written ends.
 */
export class InvocationFeed {
  private readonly listeners = new Set<Listener>();
  private cursor: Promise<number> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly log: InvocationRecords,
    private readonly pollMs = POLL_MS,
  ) {}

  get subscribers(): number {
    return this.listeners.size;
  }

  /** Listens from now on; `ready` resolves once the feed knows where the log stands (rows finishing later reach the listener). */
  subscribe(listener: Listener): { ready: Promise<void>; unsubscribe: () => void } {
    this.listeners.add(listener);
    if (this.cursor === null) {
      this.cursor = this.log.lastFinishedSeq();
      this.timer = setInterval(() => this.poll(), this.pollMs);
      this.timer.unref();
    }
    const ready = this.cursor.then(
      () => undefined,
      () => undefined,
    );
    return {
      ready,
      unsubscribe: () => {
        this.listeners.delete(listener);
        if (this.listeners.size > 0) return;
        if (this.timer) clearInterval(this.timer);
        this.timer = null;
        this.cursor = null;
      },
    };
  }

  /** This gateway wrote ends: read now rather than at the next tick. */
  nudge(): void {
    if (this.listeners.size > 0) this.poll();
  }

  private poll(): void {
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = this.read().finally(() => {
      this.polling = null;
      if (this.again) {
        this.again = false;
        this.poll();
      }
    });
  }

  private async read(): Promise<void> {
    let cursor: Promise<number> | null = this.cursor;
    while (cursor !== null && cursor === this.cursor) {
      let after: number;
      try {
        after = await cursor;
      } catch (err) {
        log.debug({ err }, "the live tail could not find where the log stands; trying again");
        if (this.cursor === cursor) this.cursor = this.log.lastFinishedSeq();
        return;
      }
      let page: Awaited<ReturnType<InvocationRecords["list"]>>;
      try {
        page = await this.log.list({ afterFinishedSeq: after, limit: PAGE });
      } catch (err) {
        log.debug({ err }, "the live tail could not read the log; trying again at the next tick");
        return;
      }
      if (cursor !== this.cursor) return; // everyone left meanwhile
      const last = page.items.at(-1)?.finishedSeq;
      if (last == null) return;
      this.cursor = cursor = Promise.resolve(last);
      for (const row of page.items) for (const listener of this.listeners) listener(row);
      if (!page.more) return;
    }
  }
}
