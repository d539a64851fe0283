import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../src/core/config.js";
import type {
  InvocationResult,
  InvocationSpec,
  OutputChannel,
  RunOptions,
  SandboxRequest,
  StreamedResponse,
} from "../../src/core/runner.js";
import type { Runtime } from "../../src/core/runtimes.js";
import { Sandbox } from "../../src/sandbox/sandbox.js";

/**
 * A real sandbox (real library, real interpreters, real jail and cgroups) for a
 * test file. Test files run in parallel workers, so each worker gets uids and a
 * jail of its own.
 */
export async function startSandbox(env: Record<string, string> = {}): Promise<{ sandbox: Sandbox; dataDir: string }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-sandbox-"));
  const worker = Number(process.env.VITEST_POOL_ID ?? "1");
  const config = loadConfig({
    DATA_DIR: dataDir,
    SANDBOX_UID_BASE: String(300_000 + Number(process.env.TEST_UID_OFFSET ?? "0") + worker * 1000),
    MAX_CONCURRENCY: "4",
    ...env,
  });
  const sandbox = await Sandbox.start(config, () => {});
  return { sandbox, dataDir };
}

export async function stopSandbox(handle: { sandbox: Sandbox; dataDir: string }): Promise<void> {
  await handle.sandbox.close();
  fs.rmSync(handle.dataDir, { recursive: true, force: true });
}

export function request(overrides: Partial<SandboxRequest> = {}): SandboxRequest {
  return {
    method: "GET",
    path: "/",
    query: [],
    headers: [],
    body: new Uint8Array(),
    url: "http://gateway.test/fn/test",
    ...overrides,
  };
}

export function spec(runtime: Runtime, code: string, overrides: Partial<InvocationSpec> = {}): InvocationSpec {
  return {
    runtime,
    code,
    env: {},
    timeoutMs: 10_000,
    memoryMb: 256,
    network: false,
    request: request(),
    ...overrides,
  };
}

/** The response body as text, or the result's diagnostics when there is none. */
export function bodyText(result: InvocationResult): string {
  if (result.response) return result.response.body.toString("utf8");
  return `<${result.status}: ${result.errorMessage}>\n${result.stderr.data.toString("utf8")}`;
}

/** Parses a JSON response body, failing with the run's diagnostics when it is not one. */
export function bodyJson<T = unknown>(result: InvocationResult): T {
  const text = bodyText(result);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`expected a JSON body, got: ${text}`);
  }
}

/** Resolves once `condition` holds, polling every 20 ms; throws after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A chunk of a streamed body as the reader got it, and whether the run had ended by then. */
export interface Read {
  data: Buffer;
  at: number;
  beforeEnd: boolean;
}

/** A run whose streamed answer and output are followed as they come. */
export interface Followed {
  result: Promise<InvocationResult>;
  /** The streamed head (rejects when the run ended without streaming). */
  stream: Promise<StreamedResponse>;
  /** Reads the streamed body to its end (or its error: then `error` is set). */
  readAll(): Promise<Read[]>;
  error: unknown;
  /** Output events as the run's onOutput got them. */
  output: { channel: OutputChannel; text: string; at: number; beforeEnd: boolean }[];
  settled(): boolean;
  streamed(): boolean;
}

export function follow(sandbox: Sandbox, invocation: InvocationSpec, options: Omit<RunOptions, "onStream" | "onOutput"> = {}): Followed {
  let settled = false;
  let streamed = false;
  let take: (stream: StreamedResponse) => void = () => {};
  const stream = new Promise<StreamedResponse>((resolve) => (take = resolve));
  const output: Followed["output"] = [];
  const result = sandbox.run(invocation, {
    ...options,
    onStream: (answer) => {
      streamed = true;
      take(answer);
    },
    onOutput: (channel, data) => output.push({ channel, text: data.toString(), at: performance.now(), beforeEnd: !settled }),
  });
  void result.finally(() => (settled = true));
  const streamOrNone = Promise.race([
    stream,
    result.then(() => (streamed ? stream : Promise.reject(new Error("the run ended without streaming")))),
  ]);
  streamOrNone.catch(() => {}); // only a test that asks for the stream cares
  const followed: Followed = {
    result,
    stream: streamOrNone,
    error: null,
    output,
    settled: () => settled,
    streamed: () => streamed,
    async readAll() {
      const reader = (await followed.stream).body.getReader();
      const reads: Read[] = [];
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          reads.push({ data: Buffer.from(value), at: performance.now(), beforeEnd: !settled });
        }
      } catch (error) {
        followed.error = error;
      }
      return reads;
    },
  };
  return followed;
}
