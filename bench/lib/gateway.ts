import { type ChildProcess, spawn } from "node:child_process";
import crypto from "node:crypto";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
/**
 * Sandbox uids of the gateways the bench starts; disjoint from the tests' and a default gateway's.
 * SANDBOX_UID_BASE (and PACKAGES_UID) in the bench's environment move them, for benches run side by side.
 */
export const BENCH_UID_BASE = process.env.SANDBOX_UID_BASE ?? "600000";
const READY_TIMEOUT_MS = 60_000;

/** A gateway started as a child process (`node --import tsx src/main.ts`) on a free loopback port. */
export class Gateway {
  private output = "";

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    readonly token: string,
    readonly dataDir: string,
    readonly env: Record<string, string>,
  ) {
    child.stdout!.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
  }

  /** `env` adds to or overrides the gateway's environment; `nodeArgs` go before the script (e.g. --cpu-prof). */
  static async start(env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Gateway> {
    const port = await freePort();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-bench-"));
    const token = crypto.randomBytes(24).toString("hex");
    const gatewayEnv: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOST: "127.0.0.1",
      PORT: String(port),
      DATA_DIR: dataDir,
      GATEWAY_TOKEN: token,
      SANDBOX_UID_BASE: BENCH_UID_BASE,
      PACKAGES_UID: process.env.PACKAGES_UID ?? String(Number(BENCH_UID_BASE) + 999),
      SHUTDOWN_GRACE_MS: "5000",
      ...env,
    };
    const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", "src/main.ts"], {
      cwd: REPO,
      env: gatewayEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const gateway = new Gateway(child, `http://127.0.0.1:${port}`, token, dataDir, gatewayEnv);
    await gateway.waitReady();
    return gateway;
  }

  get log(): string {
    return this.output;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Calls the management API; throws unless the status is one of `expect`. */
  async api<T>(method: string, route: string, body?: unknown, expect: number[] = [200, 201]): Promise<{ status: number; json: T }> {
    const response = await fetch(this.url + route, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await response.json()) as T;
    if (!expect.includes(response.status)) throw new Error(`${method} ${route}: ${response.status} ${JSON.stringify(json)}`);
    return { status: response.status, json };
  }

  /** Every log row of a function, following `next_cursor` page by page. */
  async invocations(functionName: string): Promise<{ status: string; http_status: number | null }[]> {
    type Page = { items: { status: string; http_status: number | null }[]; next_cursor: string | null };
    const rows: Page["items"] = [];
    let cursor: string | null = null;
    do {
      const query: URLSearchParams = new URLSearchParams({ function: functionName, limit: "500", ...(cursor ? { cursor } : {}) });
      const { json: page }: { json: Page } = await this.api<Page>("GET", `/api/invocations?${query}`);
      rows.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor !== null);
    return rows;
  }

  /** SIGTERM, wait for the exit, then remove the data directory once nothing is mounted under it. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, "exit");
      this.child.kill("SIGTERM");
      await exited;
    }
    // A gateway that died without unmounting its jail leaves binds there: never delete through them.
    const mounts = fs.readFileSync("/proc/self/mounts", "utf8");
    if (mounts.includes(` ${this.dataDir}`)) {
      console.error(`left ${this.dataDir} in place: something is still mounted under it`);
      return;
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`the gateway exited with ${this.child.exitCode}:\n${this.output}`);
      try {
        const response = await fetch(`${this.url}/healthz`);
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await delay(100);
    }
    this.child.kill("SIGKILL");
    throw new Error(`the gateway was not ready within ${READY_TIMEOUT_MS} ms:\n${this.output}`);
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  server.close();
  return port;
}
