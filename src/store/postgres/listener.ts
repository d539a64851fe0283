import pg from "pg";
import { log } from "../../core/log.js";
import { connectionConfig } from "./client.js";

/** How long a lost LISTEN connection waits before it connects again. */
const RECONNECT_MS = 1000;

/**
 * LISTEN on `channel` over a connection of its own, connected again whenever it is lost. `onGap`
 * is called each time it starts listening: notifications sent before (or while it was lost) were
 * missed, and whoever caches reloads.
 */
export class Listener {
  private client: pg.Client | null = null;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly channel: string,
    private readonly onPayload: (payload: string) => void,
    private readonly onGap: () => void,
  ) {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client(connectionConfig(this.url));
    this.client = client;
    let lost = false;
    const reconnect = () => {
      if (lost) return;
      lost = true;
      client.removeAllListeners("notification");
      void client.end().catch(() => {});
      if (!this.closed) setTimeout(() => void this.connect(), RECONNECT_MS).unref();
    };
    client.on("error", (err) => {
      log.debug({ err }, "the change notifications' connection was lost");
      reconnect();
    });
    client.on("end", reconnect);
    client.on("notification", (message) => {
      if (message.channel === this.channel && message.payload !== undefined) this.onPayload(message.payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${pg.escapeIdentifier(this.channel)}`);
    } catch (err) {
      log.debug({ err }, "could not listen for change notifications; retrying");
      reconnect();
      return;
    }
    this.onGap();
  }

  close(): void {
    this.closed = true;
    void this.client?.end().catch(() => {});
  }
}
