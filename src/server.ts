import type { Server } from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { serve } from "@hono/node-server";
import type { Config } from "./core/config.js";
import { log } from "./core/log.js";
import { answerClientErrorsAsJson } from "./http/client-error.js";

/**
 * How long a client may take to send a whole request (headers and body; not the time the
 * function runs): a slow sender holds a body buffer and an admission place, so not for long.
 */
const REQUEST_TIMEOUT_MS = 60_000;

/** The app's fetch, with the Node request and response @hono/node-server passes as its env (body reading uses them). */
type Fetch = (request: Request, env?: object) => Response | Promise<Response>;

/** While the sandbox starts: everything answers 503 in the API's error shape. */
const starting: Fetch = () =>
  Response.json(
    { error: { code: "starting", message: "the gateway is starting; retry in a moment" } },
    { status: 503, headers: { "Retry-After": "1" } },
  );

export interface Gateway {
  server: Server;
  /** Starts serving the app (until then every request answers 503). */
  serveApp(fetch: Fetch): void;
  /** Calls `stop` once on SIGTERM/SIGINT; a third signal exits at once (the exit hooks still run). */
  onShutdown(stop: (server: Server, signal: NodeJS.Signals) => Promise<void>): void;
}

/**
 * Listens first, so a port in use fails the start before anything is mounted; the app is
 * handed over once it is ready.
 */
export async function listen(config: Config): Promise<Gateway> {
  let current = starting;
  const server = serve({
    fetch: (request: Request, env: object) => current(request, env),
    hostname: config.HOST,
    port: config.PORT,
    // Above the body deadline, so the gateway's own 408 goes out before Node's.
    serverOptions: { requestTimeout: Math.max(REQUEST_TIMEOUT_MS, config.BODY_READ_TIMEOUT_MS + 10_000) },
  }) as Server; // serve() makes an http.Server unless told to make an http2 one
  answerClientErrorsAsJson(server);
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const shownHost = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.PORT;
  return {
    server,
    serveApp(fetch) {
      current = fetch;
      log.info(`fngw listening on http://${shownHost}:${port} (bound to ${config.HOST}; API docs at /docs)`);
    },
    onShutdown(stop) {
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        signals++;
        // Supervisors and `npm`/`tsx` may relay one signal twice: the second is noted, the third is final.
        if (signals === 1) {
          stop(server, signal).then(
            () => process.exit(0),
            (err: unknown) => {
              log.error({ err }, "shutdown failed");
              process.exit(1);
            },
          );
        } else if (signals === 2) {
          log.info(`${signal} again: still stopping (a third signal exits at once)`);
        } else {
          log.error(`${signal}: exiting now`);
          process.exit(1);
        }
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    },
  };
}

/** Stops accepting, lets answers being written reach their clients, then closes every socket (at most `ms` later). */
export async function closeServer(server: Server, ms = 2000): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const closeIdle = setInterval(() => server.closeIdleConnections(), 50);
  await Promise.race([closed, delay(ms)]);
  clearInterval(closeIdle);
  server.closeAllConnections();
}
