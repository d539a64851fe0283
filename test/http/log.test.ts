import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const FIXTURE = "test/http/fixtures/log-lines.ts";

/** Runs the fixture with LOG_LEVEL and returns its stdout and stderr as parsed JSON lines. */
async function runFixture(level: string): Promise<{ stdout: Record<string, unknown>[]; stderr: Record<string, unknown>[] }> {
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LOG_LEVEL: level },
  });
  const lines = (text: string) =>
    text
      .split("\n")
      .filter((line) => line.length > 0 && !line.startsWith("serveStatic:")) // hono's own console line (no console build here)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stdout: lines(stdout), stderr: lines(stderr) };
}

describe("the gateway's own log", () => {
  it("writes JSON lines, errors on stderr with the invocation id of an invocation that failed to log", async () => {
    const { stdout, stderr } = await runFixture("info");
    const answer = stdout.find((line) => line.fixture === "answer");
    expect(answer?.status).toBe(200); // the answer still goes out
    const failed = stderr.find((line) => String(line.msg).includes("could not be logged"));
    expect(failed).toMatchObject({ level: "error", invocation_id: answer?.invocation_id, function: "hello", name: "fngw" });
    expect(String(failed?.msg)).toContain("database or disk is full");
    expect(typeof failed?.time).toBe("string");
    expect(stdout.map((line) => line.msg)).toContain("an info line");
    expect(stderr.map((line) => line.msg)).toContain("a warn line");
    expect(stdout.map((line) => line.msg)).not.toContain("a warn line"); // each line goes to one stream
  });

  it("drops lines below LOG_LEVEL", async () => {
    const quiet = await runFixture("warn");
    expect(quiet.stdout.map((line) => line.msg)).not.toContain("an info line");
    expect(quiet.stderr.map((line) => line.msg)).toContain("a warn line");
    const verbose = await runFixture("debug");
    expect(verbose.stdout.map((line) => line.msg)).toContain("a debug line");
  });
});
