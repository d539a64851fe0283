import { performance } from "node:perf_hooks";
import { Hono, type Context } from "hono";
import type { Config } from "../../core/config.js";
import type { InvocationSpec, Runner } from "../../core/runner.js";
import type { FunctionStore, FunctionVersion } from "../../db/functions.js";
import type { InvocationLog } from "../../db/invocations.js";
import type { Admission } from "../admission.js";
import { readBodyWithin } from "../body.js";
import { ApiError, notFoundError } from "../errors.js";
import { toSandboxRequest } from "../invoke/exchange.js";
import { outcomeOfResult, outcomeOfRunnerError, rejected, saturated, type Outcome } from "../invoke/outcome.js";
import { parseTarget, type InvocationTarget } from "../invoke/target.js";
import { checkBearer, unauthorized, type TokenCheck } from "../middleware/auth.js";
import { invocationId, type InvocationIdEnv } from "../middleware/invocation-id.js";

export interface InvokeDeps {
  config: Config;
  functions: FunctionStore;
  invocations: InvocationLog;
  runner: Runner;
  tokenHash: Buffer;
  admission: Admission;
  /** Makes invocation ids; UUIDv7 (time-ordered) unless a test passes its own. */
  newId?: () => string;
}

/** Methods a function cannot be invoked with: a Web Request refuses them. */
const UNSUPPORTED_METHODS = new Set(["TRACE", "TRACK", "CONNECT"]);

/** ANY /fn/:name[@N][/*], mounted at /fn: look up, authorize, admit, read the body, run, log, answer. */
export function invokeApi(deps: InvokeDeps) {
  const app = new Hono<InvocationIdEnv>();
  app.use("/*", invocationId(deps.newId));
  app.all("/*", (c) => invoke(deps, c));
  return app;
}

async function invoke(deps: InvokeDeps, c: Context<InvocationIdEnv>): Promise<Response> {
  const { config, invocations, runner } = deps;
  const id = c.get("invocationId");
  if (UNSUPPORTED_METHODS.has(c.req.method)) {
    throw new ApiError(405, "method_not_allowed", `${c.req.method} cannot invoke a function`, {
      Allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    });
  }
  const target = parseTarget(new URL(c.req.url).pathname);
  if (!target) throw notFoundError("no such function");
  const fn = authorize(deps.functions, target, checkBearer(c.req.header("authorization"), deps.tokenHash));
  const row = { id, functionName: fn.name, version: fn.version, method: c.req.method, path: target.path };

  /** Logs a refusal (the body unread or dropped) and answers it. */
  const refuse = (outcome: Outcome) => {
    invocations.finish(invocations.start({ ...row, requestBytes: 0 }).seq, outcome.end);
    return outcome.response;
  };

  const release = deps.admission.enter(fn.name, fn.maxConcurrency);
  if (!release) {
    const outcome = saturated("the gateway is saturated; retry later", id, 1);
    // The body is left unread: closing the connection is what keeps it out of memory.
    if (c.req.raw.body) outcome.response.headers.set("Connection", "close");
    return refuse(outcome);
  }
  try {
    const read = await readBodyWithin(c.req.raw, config.MAX_BODY_BYTES);
    if (!("body" in read)) {
      const message = `the request body exceeds ${config.MAX_BODY_BYTES} bytes (MAX_BODY_BYTES)`;
      return refuse(rejected(413, "payload_too_large", message, id, read.keepAlive ? {} : { Connection: "close" }));
    }
    const { body } = read;
    const spec: InvocationSpec = {
      runtime: fn.runtime,
      code: fn.code,
      env: fn.env,
      timeoutMs: fn.timeoutMs,
      memoryMb: fn.memoryMb,
      network: fn.network,
      request: toSandboxRequest(c.req.raw, target.path, body, id),
    };
    // Written before the run, so a crash leaves a `running` row that the next start marks `interrupted`.
    const { seq } = invocations.start({ ...row, requestBytes: body.byteLength });
    const started = performance.now();
    let outcome: Outcome;
    try {
      outcome = outcomeOfResult(await runner.run(spec), id);
    } catch (err) {
      outcome = outcomeOfRunnerError(err, id, performance.now() - started);
    }
    try {
      // Written (with the other ends of this turn) before the answer goes out: a client that reads the log next finds it.
      await invocations.finishSoon(seq, outcome.end);
    } catch (err) {
      // The answer still goes out; the row stays `running` and becomes `interrupted` on restart.
      console.error(`invocation ${id}: could not record its end:`, err);
    }
    return outcome.response;
  } finally {
    release();
  }
}

/**
 * The version to run, if the caller may run it. Without a valid token, a function that does not
 * exist and one that is not public answer alike (401): names and versions of private functions
 * are not for anonymous callers to probe.
 */
function authorize(functions: FunctionStore, target: InvocationTarget, token: TokenCheck): FunctionVersion {
  const current = functions.get(target.name);
  const fn = current && (target.version === null ? current : functions.getVersion(target.name, target.version));
  // An old version is public only while the current one is too: making a function private covers every version.
  const open = current?.public === true && (fn === undefined || fn.public);
  if (token !== "ok" && !open) throw unauthorized(token);
  if (!current) throw notFoundError(`no function named '${target.name}'`);
  if (!fn) throw notFoundError(`function '${target.name}' has no version ${target.version}`);
  return fn;
}
