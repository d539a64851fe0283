// The `fngw` command and asynchronous invocations against a real gateway: invoke --async, jobs,
// retry, cancel, a job's view through `logs <id>`, and schedules given to deploy and shown by show.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { client, type Json, removeDataDir, type Server, startServer, uidBase, waitFor } from "../e2e/harness.js";
import { runCli, workDir, writeFile } from "./harness.js";

vi.setConfig({ testTimeout: 120_000 });

const TOKEN = "cli-jobs-token-0f3e9a1b2c";
let server: Server;
let dir: string;
const call = client(
  () => server.url,
  () => TOKEN,
);
const fngw = (args: string[]) => runCli(args, { env: { GATEWAY_URL: server.url, GATEWAY_TOKEN: TOKEN } });
const jobState = async (id: string) => ((await (await call(`/api/invocations/${id}`)).json()) as Json).state as string;

beforeAll(async () => {
  server = await startServer({ env: { GATEWAY_TOKEN: TOKEN, PACKAGES_UID: String(uidBase(0) + 99), ASYNC_POLL_MS: "50" } });
  dir = workDir();
});
afterAll(async () => {
  if (!server) return;
  await server.stop();
  removeDataDir(server.dataDir);
});

describe("fngw and jobs", () => {
  it("invoke --async prints the job; logs <id> shows its attempts and answer; jobs --failed lists a dead letter; retry runs it again", async () => {
    const file = writeFile(
      dir,
      "judge.py",
      "def handler(request):\n    if request.text() == 'bad':\n        return ('no', 422)\n    return 'fine'\n",
    );
    expect((await fngw(["deploy", file, "--retries", "0"])).code).toBe(0);

    const ok = await fngw(["invoke", "judge", "--async", "-d", "good"]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toMatch(/^202 Accepted\ninvocation [0-9a-f-]{36}$/m);
    const id = JSON.parse(ok.stdout).id as string;
    await waitFor(async () => (await jobState(id)) === "succeeded", "the job to succeed");
    const shown = await fngw(["logs", id]);
    expect(shown.stdout).toMatch(/state\s+succeeded/);
    expect(shown.stdout).toMatch(/attempts\s+1 of 1/);
    expect(shown.stdout).toContain("--- answer: 200 (utf8) ---\nfine");

    const bad = JSON.parse((await fngw(["invoke", "judge", "--async", "-d", "bad"])).stdout).id as string;
    await waitFor(async () => (await jobState(bad)) === "failed", "the job to fail");
    const failed = await fngw(["jobs", "--failed"]);
    expect(failed.stdout.split("\n")[0]).toMatch(/^ID\s+FUNCTION\s+TRIGGER\s+STATE/);
    expect(failed.stdout).toContain(bad);
    expect(failed.stdout).not.toContain(id);

    const again = await fngw(["retry", bad]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^queued again as [0-9a-f-]{36} \(\/api\/invocations\/[0-9a-f-]{36}\)$/m);
  });

  it("--callback-url without --async is a usage error (exit 2), and a refused callback URL exits 1 naming why", async () => {
    expect((await fngw(["invoke", "judge", "--callback-url", "https://example.com/"])).code).toBe(2);
    const refused = await fngw(["invoke", "judge", "--async", "--callback-url", "http://[::1]/hook"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/loopback/);
  });

  it("deploy --schedule --tz stores a schedule that show prints with its next run; cancel cancels", async () => {
    const file = writeFile(dir, "nightly.py", "def handler(request):\n    return 'ran'\n");
    const deployed = await fngw(["deploy", file, "--schedule", "0 3 * * *", "--tz", "Europe/Berlin", "--max-event-age", "600"]);
    expect(deployed.code).toBe(0);
    const shown = await fngw(["show", "nightly"]);
    expect(shown.stdout).toMatch(/schedule\s+0 3 \* \* \* \(Europe\/Berlin, overlap skip\): next \d{4}-\d{2}-\d{2}T0[12]:00:00\.000Z/);
    expect(shown.stdout).toMatch(/max_event_age_s\s+600/);
    expect((await fngw(["deploy", file, "--tz", "UTC"])).code).toBe(2);
    const bad = await fngw(["deploy", file, "--schedule", "61 * * * *"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/'61 \* \* \* \*' is not a valid cron expression/);

    // A job waiting for its retry (a second after its first attempt failed) is cancelled.
    const failing = writeFile(dir, "failing.py", "def handler(request):\n    return ('down', 503)\n");
    expect((await fngw(["deploy", failing, "--retries", "5"])).code).toBe(0);
    const id = JSON.parse((await fngw(["invoke", "failing", "--async"])).stdout).id as string;
    await waitFor(async () => (await jobState(id)) === "retrying", "the job to wait for its retry");
    const cancelled = await fngw(["cancel", id]);
    expect(cancelled.stdout).toBe(`cancelled ${id}\n`);
    expect(await jobState(id)).toBe("cancelled");
    expect((await fngw(["cancel", id])).code).toBe(1);
  });
});
