import crypto from "node:crypto";
import dns from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { performance } from "node:perf_hooks";
import { addressProblem, callbackSignature, literalAddress, parseCallbackUrl, SIGNATURE_HEADER } from "../core/callbacks.js";
import { backoffMs } from "../core/jobs.js";
import { log } from "../core/log.js";
import type { JobRecord, Store } from "../store/contract.js";
import type { SecretBox } from "../store/secrets.js";
import { Pause } from "./pause.js";

/**
 * Callback delivery: when a job with `X-Callback-Url` ends, its answer is POSTed there, signed,
 * from whichever gateway leases the delivery. The URL's host is resolved once per delivery and
 * every address it resolves to must be public (unless CALLBACK_ALLOW_PRIVATE=1); the connection
 * goes to the address checked (DNS cannot be switched between check and use); redirects are not
 * followed; a network error or any answer but 2xx is retried with backoff, up to a limit, and
 * every delivery is recorded.
 */

/** A URL that may receive callbacks, with the address a delivery connects to. */
export interface CheckedUrl {
  url: URL;
  address: string;
  family: 4 | 6;
}

export class CallbackUrlError extends Error {
  override name = "CallbackUrlError";
}

/** Resolves `text`'s host once and checks the URL and every address; throws CallbackUrlError saying why it may not be used. */
export async function checkCallbackUrl(text: string, allowPrivate: boolean): Promise<CheckedUrl> {
  const parsed = parseCallbackUrl(text);
  if ("problem" in parsed) throw new CallbackUrlError(`X-Callback-Url ${parsed.problem}`);
  const { url } = parsed;
  const literal = literalAddress(url);
  let addresses: { address: string; family: number }[];
  if (literal !== null) {
    addresses = [{ address: literal, family: literal.includes(":") ? 6 : 4 }];
  } else {
    try {
      addresses = await dns.lookup(url.hostname, { all: true, verbatim: true });
    } catch (err) {
      throw new CallbackUrlError(`X-Callback-Url: ${url.hostname} does not resolve (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }
  if (addresses.length === 0) throw new CallbackUrlError(`X-Callback-Url: ${url.hostname} does not resolve`);
  if (!allowPrivate) {
    for (const { address } of addresses) {
      const problem = addressProblem(address);
      if (problem) {
        throw new CallbackUrlError(
          `X-Callback-Url: ${url.hostname} resolves to ${problem}; callbacks go to public addresses only (CALLBACK_ALLOW_PRIVATE=1 allows others)`,
        );
      }
    }
  }
  const [first] = addresses;
  return { url, address: first!.address, family: first!.family === 6 ? 6 : 4 };
}

/** Where the signing secret is kept: sealed with the gateway's secrets key, in the settings table. */
const SECRET_SETTING = "callback_secret";
const SECRET_PLACE = { functionName: "(gateway)", version: 0, variable: "callback_secret" };

export const newCallbackSecret = () => `whsec_${crypto.randomBytes(24).toString("base64url")}`;

/** The secret callbacks are signed with: one per database, shown once when made (at the first start, or by rotation). */
export class CallbackSecret {
  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
  ) {}

  /** Makes the secret if the database has none; returns it when this call made it (to be shown, once). */
  async ensure(): Promise<string | null> {
    const secret = newCallbackSecret();
    const sealed = this.box.seal(secret, SECRET_PLACE);
    const held = await this.store.settings.setIfAbsent(SECRET_SETTING, sealed);
    return held === sealed ? secret : null;
  }

  /** A new secret, in force for every delivery from now on (on every gateway); returned to be shown once. */
  async rotate(): Promise<string> {
    const secret = newCallbackSecret();
    await this.store.settings.set(SECRET_SETTING, this.box.seal(secret, SECRET_PLACE));
    return secret;
  }

  async current(): Promise<string> {
    const sealed = await this.store.settings.get(SECRET_SETTING);
    if (sealed === undefined) throw new Error("there is no callback secret (POST /api/callback-secret makes one)");
    return this.box.open(sealed, SECRET_PLACE);
  }
}

export interface CallbackOptions {
  node: string;
  allowPrivate: boolean;
  maxAttempts: number;
  timeoutMs: number;
  leaseMs: number;
  pollMs: number;
  now?: () => number;
  random?: () => number;
}

/** Deliveries in flight at once on one gateway. */
const PARALLEL_DELIVERIES = 8;
/** Bytes of a receiver's answer read (and dropped); the rest is not waited for. */
const ANSWER_READ_BYTES = 64 * 1024;

/** Delivers due callbacks from this gateway. */
export class CallbackSender {
  private readonly now: () => number;
  private readonly random: () => number;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private readonly pause = new Pause();

  constructor(
    private readonly store: Store,
    private readonly secret: CallbackSecret,
    private readonly options: CallbackOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  start(): void {
    this.loop = this.pump();
  }

  wake(): void {
    this.pause.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.loop;
  }

  private async pump(): Promise<void> {
    while (!this.stopped) {
      let due: JobRecord[] = [];
      try {
        const now = this.now();
        due = await this.store.jobs.leaseCallbacks(this.options.node, now, now + this.options.leaseMs, PARALLEL_DELIVERIES);
      } catch (err) {
        log.warn({ err }, `could not take callbacks to deliver: ${(err as Error).message}`);
      }
      await Promise.all(due.map((job) => this.deliver(job)));
      if (due.length < PARALLEL_DELIVERIES) await this.pause.sleep(this.options.pollMs);
    }
  }

  private async deliver(job: JobRecord): Promise<void> {
    const attempt = job.callbackAttempts;
    const at = this.now();
    const started = performance.now();
    let httpStatus: number | null = null;
    let error: string | null = null;
    try {
      const target = await checkCallbackUrl(job.callbackUrl!, this.options.allowPrivate);
      httpStatus = await this.post(target, job, await this.secret.current());
      if (httpStatus < 200 || httpStatus > 299) error = `the receiver answered ${httpStatus}`;
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    const delivered = error === null;
    const next =
      delivered || attempt >= this.options.maxAttempts
        ? { state: delivered ? ("delivered" as const) : ("failed" as const) }
        : { state: "pending" as const, runAt: this.now() + backoffMs(attempt, this.random()) };
    try {
      await this.store.jobs.recordDelivery(
        { jobId: job.id, attempt, at, durationMs: performance.now() - started, httpStatus, error, node: this.options.node },
        next,
      );
    } catch (err) {
      log.warn({ err }, `job ${job.id}: could not record callback delivery ${attempt}: ${(err as Error).message}`);
    }
    if (!delivered) log.debug(`job ${job.id}: callback delivery ${attempt} failed: ${error}`);
  }

  /** One POST to the checked address; resolves with the receiver's status. */
  private post(target: CheckedUrl, job: JobRecord, secret: string): Promise<number> {
    const body = job.resultBody ?? Buffer.alloc(0);
    const unix = Math.floor(this.now() / 1000);
    const headers: Record<string, string> = {
      "content-type": job.resultHeaders?.find(([name]) => name.toLowerCase() === "content-type")?.[1] ?? "application/octet-stream",
      "content-length": String(body.byteLength),
      "user-agent": "fngw-callback",
      "x-invocation-id": job.id,
      "x-fngw-job-state": job.state,
      "x-attempts": String(job.attempts),
      "x-duration-ms": String(Math.round(job.durationMs ?? 0)),
      [SIGNATURE_HEADER.toLowerCase()]: callbackSignature(secret, unix, body),
    };
    if (job.resultHttpStatus !== null) headers["x-function-status"] = String(job.resultHttpStatus);
    // The connection goes to the address that was checked, whatever DNS says by now.
    const lookup: LookupFunction = (_host, options, callback) => {
      if (options.all) callback(null, [{ address: target.address, family: target.family }]);
      else callback(null, target.address, target.family);
    };
    const client = target.url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const request = client.request(
        target.url,
        { method: "POST", headers, lookup, timeout: this.options.timeoutMs, agent: false },
        (response) => {
          let read = 0;
          response.on("data", (chunk: Buffer) => {
            read += chunk.byteLength;
            if (read > ANSWER_READ_BYTES) response.destroy();
          });
          response.on("error", () => {});
          response.on("close", () => resolve(response.statusCode ?? 0));
        },
      );
      request.on("timeout", () => request.destroy(new Error(`no answer within ${this.options.timeoutMs} ms (CALLBACK_TIMEOUT_MS)`)));
      request.on("error", reject);
      request.end(body);
    });
  }
}
