import { performance } from "node:perf_hooks";
import { type Context, Hono } from "hono";
import type { InvocationFeed } from "../../cluster/feed.js";
import type { FunctionCatalog } from "../../cluster/functions.js";
import type { TokenRegistry } from "../../cluster/tokens.js";
import type { Config } from "../../core/config.js";
import { prefersAsync } from "../../core/jobs.js";
import { log } from "../../core/log.js";
import { invocationSpec, type Runner } from "../../core/runner.js";
import { grantsInvoke } from "../../core/scopes.js";
import type { JobQueue } from "../../jobs/index.js";
import type { FunctionEnvironments } from "../../packages/function-environments.js";
import { missingPackageHint } from "../../packages/hints.js";
import type { FunctionVersion } from "../../store/contract.js";
import type { InvocationLogWriter } from "../../store/log-writer.js";
import type { Admission, ReadingLimit } from "../admission.js";
import { type CappedBody, declaresBody, incomingOf, outgoingOf, readBodyWithin } from "../body.js";
import { ApiError, notFoundError } from "../errors.js";
import { enqueueAsync } from "../invoke/async.js";
import { toSandboxRequest, wantsLiveOutput } from "../invoke/exchange.js";
import { liveOutput } from "../invoke/live.js";
import { endOfStream, type Outcome, outcomeOfResult, outcomeOfRunnerError, rejected, saturated } from "../invoke/outcome.js";
import { runForAnswer, streamedResponse } from "../invoke/stream.js";
import { functionUrl, type InvocationTarget, parseTarget } from "../invoke/target.js";
import type { GatewayMetrics, RejectionReason } from "../metrics.js";
import { checkBearer, forbidden, type TokenCheck, unauthorized } from "../middleware/auth.js";
import { type InvocationIdEnv, invocationId } from "../middleware/invocation-id.js";

export interface InvokeDeps {
  config: Config;
  functions: FunctionCatalog;
  /** Writes the log's rows (batched; spooled while the database is away). */
  log: InvocationLogWriter;
  runner: Runner;
  tokens: TokenRegistry;
  admission: Admission;
  /** Request bodies being received, before admission. */
  reading: ReadingLimit;
  /** The live stream, told when this gateway wrote ends. */
  feed?: InvocationFeed;
  /** Counts invocations, refusals and log writes for /metrics. */
  metrics?: GatewayMetrics;
  /** Makes invocation ids; UUIDv7 (time-ordered) unless a test passes its own. */
  newId?: () => string;
  /** Package environments, mounted for the versions that have one. */
  packages?: FunctionEnvironments;
  /** Where the routes are mounted (default `/fn/`): the target is read from the path below it. */
  prefix?: string;
  /** Who is calling (default: the bearer token of the request); /api/invoke passes the console session's token. */
  caller?: (c: Context<InvocationIdEnv>) => TokenCheck;
  /** The job queue: `Prefer: respond-async` is answered 202 once the job is stored (without it, the preference is ignored). */
  jobs?: JobQueue;
  /** Whether an error means the database cannot be reached now. */
  unavailable?: (error: unknown) => boolean;
}

/** Seconds a caller is told to wait for an environment that is still installing. */
const PACKAGES_RETRY_AFTER_SECONDS = 5;

/** Methods a function cannot be invoked with: a Web Request refuses them. */
const UNSUPPORTED_METHODS = new Set(["TRACE", "TRACK", "CONNECT"]);

/**
 * ANY /fn/:name[@N][/*], mounted at /fn: look up, authorize, read the body, admit, run, log, answer:
 * whole, streamed as the function writes it, or as live output (invoke/).
 */
export function invokeApi(deps: InvokeDeps) {
  const app = new Hono<InvocationIdEnv>();
  app.use("/*", invocationId(deps.newId));
  app.all("/*", (c) => invoke(deps, c));
  return app;
}

async function invoke(deps: InvokeDeps, c: Context<InvocationIdEnv>): Promise<Response> {
  const { config, runner } = deps;
  const id = c.get("invocationId");
  if (UNSUPPORTED_METHODS.has(c.req.method)) {
    throw new ApiError(405, "method_not_allowed", `${c.req.method} cannot invoke a function`, {
      Allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    });
  }
  const target = parseTarget(new URL(c.req.url).pathname, deps.prefix);
  if (!target) throw notFoundError("no such function");
  const caller = deps.caller?.(c) ?? checkBearer(c.req.header("authorization"), deps.tokens);
  const fn = await authorize(deps.functions, target, caller);
  if (!deps.log.accepting) {
    // The database is away and the spool on this gateway's disk is full: a row could not be kept.
    throw new ApiError(
      503,
      "log_unavailable",
      "the database is unreachable and this gateway's log spool is full (SPOOL_MAX_MB); retry later",
      { "Retry-After": "5" },
    );
  }
  if (deps.jobs && prefersAsync(c.req.header("prefer"))) {
    return enqueueAsync({ ...deps, jobs: deps.jobs, unavailable: deps.unavailable ?? (() => false) }, c, fn, target);
  }
  const row = { id, functionName: fn.name, version: fn.version, method: c.req.method, path: target.path };

  // The log must not stand between a caller and its answer: a failed write (a full disk) is
  // reported on stderr and by /healthz, and the invocation goes on without its row.
  const logStart = async (requestBytes: number) => {
    // From here on the id means something: the row, or the gateway's own log line if the row cannot be written.
    c.set("invocationLogged", true);
    try {
      await deps.log.start({ ...row, requestBytes });
      return true;
    } catch (err) {
      log.error({ err, invocation_id: id, function: fn.name }, `invocation ${id} could not be logged: ${(err as Error).message}`);
      return false;
    }
  };
  // Ends are written with the other ends of this event-loop turn, before the answer goes out: a
  // client that reads the log next finds the row.
  const logEnd = async (started: boolean, outcome: Outcome) => {
    deps.metrics?.invocationEnded(fn.name, outcome.end.status, outcome.end.durationMs);
    if (!started) return;
    try {
      await deps.log.finish(id, { ...outcome.end, firstByteMs: outcome.firstByteMs });
      deps.feed?.nudge();
    } catch (err) {
      // The answer still goes out; the row stays `running` and becomes `interrupted` on restart.
      log.error({ err, invocation_id: id, function: fn.name }, `invocation ${id}: could not record its end: ${(err as Error).message}`);
    }
  };

  /** Logs a refusal (the body unread or dropped) and answers it. */
  const refuse = async (reason: RejectionReason, outcome: Outcome) => {
    deps.metrics?.rejected(reason);
    await logEnd(await logStart(0), outcome);
    return outcome.response;
  };

  // A version whose packages are not ready does not run: 503 (Retry-After while they install).
  let packagesDir: string | undefined;
  if (fn.environmentKey !== null) {
    const environment = deps.packages?.record(fn.environmentKey) ?? null;
    packagesDir = deps.packages?.treeDir(fn.environmentKey) ?? undefined;
    if (packagesDir === undefined) {
      const where = `version ${fn.version} of '${fn.name}'`;
      if (environment?.state === "failed") {
        return refuse(
          "packages",
          rejected(503, "packages_failed", `the packages of ${where} failed to install: ${environment.error ?? "unknown error"}`, id, {}),
        );
      }
      const state = environment?.state ?? "unavailable";
      const headers = { "Retry-After": String(PACKAGES_RETRY_AFTER_SECONDS) };
      return refuse(
        "packages",
        rejected(503, "packages_not_ready", `the packages of ${where} are not installed yet (${state}); retry later`, id, headers),
      );
    }
  }

  if (!deps.admission.wouldAdmit(fn.name, fn.maxConcurrency)) {
    // A full gateway reads no body: the 429 goes out at once and the connection closes under it.
    const outcome = saturated("the gateway is saturated; retry later", id, 1);
    if (declaresBody(c.req.raw, incomingOf(c))) outcome.response.headers.set("Connection", "close");
    return refuse("saturated", outcome);
  }

  // The body is read before admission, bounded on its own (reading places, a deadline), so a client
  // that stalls mid-body holds no admission place.
  let read: CappedBody = { body: Buffer.alloc(0) };
  if (declaresBody(c.req.raw, incomingOf(c))) {
    const stopReading = deps.reading.enter();
    if (!stopReading) {
      const message = `${config.MAX_READING_REQUESTS} request bodies are being received (MAX_READING_REQUESTS); retry later`;
      return refuse("reading", rejected(429, "rejected", message, id, { "Retry-After": "1", Connection: "close" }));
    }
    try {
      read = await readBodyWithin(c.req.raw, { maxBytes: config.MAX_BODY_BYTES, timeoutMs: config.BODY_READ_TIMEOUT_MS }, incomingOf(c));
    } finally {
      stopReading();
    }
  }
  if ("timedOut" in read) {
    const message = `the request body did not arrive within ${config.BODY_READ_TIMEOUT_MS} ms (BODY_READ_TIMEOUT_MS)`;
    return refuse("body_timeout", rejected(408, "request_timeout", message, id, { Connection: "close" }));
  }
  if ("tooLarge" in read) {
    const message = `the request body exceeds ${config.MAX_BODY_BYTES} bytes (MAX_BODY_BYTES)`;
    return refuse("body_too_large", rejected(413, "payload_too_large", message, id, read.keepAlive ? {} : { Connection: "close" }));
  }
  const release = deps.admission.enter(fn.name, fn.maxConcurrency);
  if (!release) return refuse("saturated", saturated("the gateway is saturated; retry later", id, 1));
  // A streamed answer holds its admission place until its body has gone out: it is handed over.
  let handedOver = false;
  try {
    const { body } = read;
    const spec = invocationSpec(fn, toSandboxRequest(c.req.raw, target.path, body, id, functionUrl(c.req.url, deps.prefix)), packagesDir);
    // Written before the run, so a crash leaves a `running` row that the next start marks `interrupted`.
    const started = await logStart(body.byteLength);
    const runStarted = performance.now();
    const refused = (err: unknown) => {
      const outcome = outcomeOfRunnerError(err, id, performance.now() - runStarted);
      if (outcome.end.status === "rejected") deps.metrics?.rejected("queue_timeout");
      return outcome;
    };
    const finish = async (outcome: Outcome) => {
      if (outcome.end.status !== "ok") {
        const hint = missingPackageHint(fn.runtime, outcome.end.stderr, fn.packages);
        if (hint) outcome.end.stderr += `${outcome.end.stderr === "" || outcome.end.stderr.endsWith("\n") ? "" : "\n"}${hint}\n`;
      }
      await logEnd(started, outcome);
    };

    if (wantsLiveOutput(c.req.header("accept"))) {
      deps.metrics?.streamed(fn.name, "events");
      const live = liveOutput(c, {
        invocationId: id,
        runStarted,
        run: (options) => runner.run(spec, options),
        outcomeOf: (run) => (run.status === "fulfilled" ? outcomeOfResult(run.value, id) : refused(run.reason)),
        async settle(outcome) {
          try {
            deps.metrics?.firstByte(fn.name, outcome.firstByteMs);
            await finish(outcome);
          } finally {
            release();
          }
        },
      });
      handedOver = true;
      return live;
    }

    let answer: Awaited<ReturnType<typeof runForAnswer>>;
    try {
      answer = await runForAnswer(runner, spec, c.req.raw.signal);
    } catch (err) {
      const outcome = refused(err);
      await finish(outcome);
      return outcome.response;
    }
    if (answer.kind === "whole") {
      const outcome = outcomeOfResult(answer.result, id, performance.now() - runStarted);
      await finish(outcome);
      return outcome.response;
    }

    const firstByteMs = performance.now() - runStarted;
    deps.metrics?.streamed(fn.name, "body");
    deps.metrics?.firstByte(fn.name, firstByteMs);
    const outgoing = outgoingOf(c);
    const streamed = streamedResponse(
      answer.head,
      async (sent) => {
        try {
          const outcome = await answer.result.then(
            (result) => ({ response: new Response(null), end: endOfStream(result, sent), firstByteMs }),
            (err: unknown) => ({ ...refused(err), firstByteMs }),
          );
          await finish(outcome);
        } finally {
          release();
        }
      },
      outgoing && (() => outgoing.destroy()),
    );
    handedOver = true;
    return streamed;
  } finally {
    if (!handedOver) release();
  }
}

/**
 * The version to run, if the caller may run it. Without a valid token, a function that does not
 * exist and one that is not public answer alike (401): names and versions of private functions
 * are not for anonymous callers to probe; nor, with a token whose scopes do not cover the name
 * (403), for its holder.
 */
async function authorize(functions: FunctionCatalog, target: InvocationTarget, token: TokenCheck): Promise<FunctionVersion> {
  const current = functions.get(target.name);
  const fn = current && (target.version === null ? current : await functions.version(target.name, target.version));
  // An old version is public only while the current one is too: making a function private covers every version.
  const open = current?.public === true && (fn === undefined || fn.public);
  if (!open) {
    if (token.kind !== "ok") throw unauthorized(token);
    if (!grantsInvoke(token.token.scopes, target.name)) {
      throw forbidden(
        `calling '${target.name}' needs a token with the 'invoke:${target.name}' scope (or a matching invoke:<prefix>*, or admin)`,
      );
    }
  }
  if (!current) throw notFoundError(`no function named '${target.name}'`);
  if (!fn) throw notFoundError(`function '${target.name}' has no version ${target.version}`);
  return fn;
}
