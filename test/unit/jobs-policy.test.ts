import { describe, expect, it } from "vitest";
import { addressProblem, callbackSignature, literalAddress, parseCallbackUrl, verifyCallbackSignature } from "../../src/core/callbacks.js";
import { backoffMs, beforeAttempt, functionShare, nextStep, prefersAsync, retryable } from "../../src/core/jobs.js";
import { cronProblem, dueTicks, nextTicks, ScheduleSchema, scheduleKey } from "../../src/core/schedules.js";

// The job queue's rules, without a database or a clock: every time is given.

const iso = (ms: number) => new Date(ms).toISOString();
const at = (text: string) => Date.parse(text);

describe("retries", () => {
  it("wait 1 s, 2 s, 4 s … capped at 5 min, each within ±20%", () => {
    expect([1, 2, 3, 4].map((n) => backoffMs(n, 0.5))).toEqual([1000, 2000, 4000, 8000]);
    expect(backoffMs(20, 0.5)).toBe(300_000);
    expect(backoffMs(1, 0)).toBe(800);
    expect(backoffMs(1, 0.999999)).toBe(1200);
  });

  const table: [string, { status: Parameters<typeof retryable>[0]["status"]; httpStatus: number | null }, boolean][] = [
    ["error", { status: "error", httpStatus: 500 }, true],
    ["timeout", { status: "timeout", httpStatus: 504 }, true],
    ["oom", { status: "oom", httpStatus: 500 }, true],
    ["interrupted", { status: "interrupted", httpStatus: 503 }, true],
    ["an answer 503", { status: "ok", httpStatus: 503 }, true],
    ["an answer 429", { status: "ok", httpStatus: 429 }, true],
    ["the gateway saturated (rejected 429)", { status: "rejected", httpStatus: 429 }, true],
    ["forbidden", { status: "forbidden", httpStatus: 500 }, false],
    ["an answer 404", { status: "ok", httpStatus: 404 }, false],
    ["an answer 400", { status: "ok", httpStatus: 400 }, false],
    ["an answer 200 (it succeeded)", { status: "ok", httpStatus: 200 }, false],
  ];
  for (const [name, outcome, expected] of table) {
    it(`${expected ? "retry" : "do not retry"} ${name}`, () => expect(retryable(outcome)).toBe(expected));
  }

  it("end a job: succeeded, failed when attempts are spent or the failure is final, expired past the maximum age", () => {
    const limits = { attempts: 3, attempt: 1, expiresAt: 100_000 };
    expect(nextStep({ status: "ok", httpStatus: 201 }, limits, 0, 0.5)).toEqual({ state: "succeeded" });
    expect(nextStep({ status: "error", httpStatus: 500 }, limits, 0, 0.5)).toEqual({ state: "retrying", runAt: 1000 });
    expect(nextStep({ status: "error", httpStatus: 500 }, { ...limits, attempt: 2 }, 10_000, 0.5)).toEqual({
      state: "retrying",
      runAt: 12_000,
    });
    expect(nextStep({ status: "error", httpStatus: 500 }, { ...limits, attempt: 3 }, 0, 0.5)).toEqual({ state: "failed" });
    expect(nextStep({ status: "ok", httpStatus: 422 }, limits, 0, 0.5)).toEqual({ state: "failed" });
    expect(nextStep({ status: "timeout", httpStatus: 504 }, limits, 99_500, 0.5)).toEqual({ state: "expired" });
  });

  it("do not run a job past its maximum age, nor one whose attempts gateways that died have spent", () => {
    expect(beforeAttempt({ attempts: 3, attempt: 1, expiresAt: 1000 }, 999)).toEqual({ run: true });
    expect(beforeAttempt({ attempts: 3, attempt: 1, expiresAt: 1000 }, 1001)).toMatchObject({ run: false, state: "expired" });
    expect(beforeAttempt({ attempts: 3, attempt: 4, expiresAt: 1000 }, 0)).toMatchObject({ run: false, state: "failed" });
  });

  it("give each function a share of the queue", () => {
    expect(functionShare({ maxJobs: 100, maxBytes: 1000, functionSharePercent: 25 })).toEqual({ maxJobs: 25, maxBytes: 250 });
    expect(functionShare({ maxJobs: 2, maxBytes: 10, functionSharePercent: 1 })).toEqual({ maxJobs: 1, maxBytes: 1 });
  });

  it("read Prefer: respond-async among other preferences (RFC 7240)", () => {
    expect(prefersAsync("respond-async")).toBe(true);
    expect(prefersAsync("return=minimal, Respond-Async; wait=10")).toBe(true);
    expect(prefersAsync("wait=10")).toBe(false);
    expect(prefersAsync(undefined)).toBe(false);
  });
});

describe("schedules", () => {
  it("fire a New York schedule at the right UTC instants across the spring and autumn changes", () => {
    const ny = { cron: "30 8 * * *", timezone: "America/New_York" };
    // 8:30 EST is 13:30 UTC; from 9 March 2025 (clocks forward) 8:30 EDT is 12:30 UTC.
    expect(nextTicks(ny, at("2025-03-07T00:00:00Z"), 4).map(iso)).toEqual([
      "2025-03-07T13:30:00.000Z",
      "2025-03-08T13:30:00.000Z",
      "2025-03-09T12:30:00.000Z",
      "2025-03-10T12:30:00.000Z",
    ]);
    // Back on 2 November 2025.
    expect(nextTicks(ny, at("2025-11-01T00:00:00Z"), 3).map(iso)).toEqual([
      "2025-11-01T12:30:00.000Z",
      "2025-11-02T13:30:00.000Z",
      "2025-11-03T13:30:00.000Z",
    ]);
  });

  it("fire a tick inside the skipped hour once, and the repeated hour once (New York, 2:30 every day)", () => {
    const ticks = nextTicks({ cron: "30 2 * * *", timezone: "America/New_York" }, at("2025-03-08T00:00:00Z"), 3).map(iso);
    // 2:30 does not exist on 9 March: croner runs it at 3:30 EDT (07:30 UTC), once.
    expect(new Set(ticks.map((t) => t.slice(0, 10))).size).toBe(3);
    const autumn = nextTicks({ cron: "30 1 * * *", timezone: "America/New_York" }, at("2025-11-01T12:00:00Z"), 2).map(iso);
    expect(autumn).toEqual(["2025-11-02T05:30:00.000Z", "2025-11-03T06:30:00.000Z"]);
  });

  it("fire the one due tick; run late ticks within the grace; catch up once after an outage, the rest missed", () => {
    const everyMinute = { cron: "* * * * *", timezone: "UTC" };
    const t0 = at("2030-01-01T00:00:00Z");
    expect(dueTicks(everyMinute, t0, t0 + 60_000 + 5, 3600_000)).toEqual({ run: [t0 + 60_000], missed: [], uncounted: 0 });
    expect(dueTicks(everyMinute, t0, t0 + 59_000, 3600_000)).toEqual({ run: [], missed: [], uncounted: 0 });
    // Down for 10 minutes: the newest tick runs (within the maximum age), the nine before it are missed.
    const plan = dueTicks(everyMinute, t0, t0 + 10 * 60_000 + 30_000, 3600_000);
    expect(plan.run).toEqual([t0 + 10 * 60_000]);
    expect(plan.missed).toHaveLength(9);
    // Past the maximum age: nothing runs.
    expect(dueTicks(everyMinute, t0, t0 + 10 * 60_000 + 30_000, 20_000).run).toEqual([]);
    // Every second, a slow loop: both late ticks run.
    const everySecond = { cron: "* * * * * *", timezone: "UTC" };
    expect(dueTicks(everySecond, t0, t0 + 2005, 60_000).run).toEqual([t0 + 1000, t0 + 2000]);
  });

  it("refuse a bad expression naming it, and an unknown zone", () => {
    expect(cronProblem("61 * * * *")).toMatch(/'61 \* \* \* \*' is not a valid cron expression/);
    expect(cronProblem("*/5 * * * *")).toBeNull();
    expect(cronProblem("*/5 * * * * *")).toBeNull();
    const parsed = ScheduleSchema.safeParse({ cron: "0 9 * * *", timezone: "Mars/Olympus" });
    expect(parsed.success).toBe(false);
    expect(ScheduleSchema.parse({ cron: "0 9 * * *" })).toEqual({ cron: "0 9 * * *", timezone: "UTC", enabled: true, overlap: "skip" });
  });

  it("key a schedule by its expression and zone", () => {
    expect(scheduleKey({ cron: "* * * * *", timezone: "UTC" })).toBe(scheduleKey({ cron: "* * * * *", timezone: "UTC" }));
    expect(scheduleKey({ cron: "* * * * *", timezone: "UTC" })).not.toBe(scheduleKey({ cron: "* * * * *", timezone: "Europe/Berlin" }));
  });
});

describe("callbacks", () => {
  it("refuse loopback, private, link-local and metadata addresses in every spelling", () => {
    const refused = [
      "http://127.0.0.1/",
      "http://0x7f000001/",
      "http://2130706433/",
      "http://0177.0.0.1/",
      "http://127.1/",
      "http://[::1]/",
      "http://[::ffff:127.0.0.1]/",
      "http://[::ffff:7f00:1]/",
      "http://169.254.169.254/latest/meta-data/",
      "http://[fd00:ec2::254]/",
      "http://100.100.100.200/",
      "http://10.0.0.1/",
      "http://192.168.1.1/",
      "http://172.16.0.1/",
      "http://0.0.0.0/",
      "http://[::]/",
      "http://[fe80::1]/",
      "http://[64:ff9b::7f00:1]/",
      "http://[2002:7f00:1::]/",
    ];
    for (const text of refused) {
      const parsed = parseCallbackUrl(text);
      if ("problem" in parsed) throw new Error(`${text}: ${parsed.problem}`);
      const address = literalAddress(parsed.url);
      expect(address, text).not.toBeNull();
      expect(addressProblem(address!), text).not.toBeNull();
    }
    expect(addressProblem("93.184.215.14")).toBeNull();
    expect(addressProblem("2606:4700::1111")).toBeNull();
  });

  it("refuse what is not an http(s) URL, or carries credentials", () => {
    expect(parseCallbackUrl("file:///etc/passwd")).toEqual({ problem: "must be http or https, not file" });
    expect(parseCallbackUrl("gopher://example.com/")).toMatchObject({ problem: expect.stringMatching(/http or https/) });
    expect(parseCallbackUrl("http://user:pw@example.com/")).toEqual({ problem: "must not carry credentials" });
    expect(parseCallbackUrl("not a url")).toEqual({ problem: "is not a URL" });
  });

  it("sign as Stripe does, and verify in constant time within the tolerance", () => {
    const body = Buffer.from('{"ok":true}');
    const header = callbackSignature("whsec_test", 1_900_000_000, body);
    expect(header).toMatch(/^t=1900000000,v1=[0-9a-f]{64}$/);
    expect(verifyCallbackSignature("whsec_test", header, body, 1_900_000_010)).toBe(true);
    expect(verifyCallbackSignature("whsec_other", header, body, 1_900_000_010)).toBe(false);
    expect(verifyCallbackSignature("whsec_test", header, Buffer.from('{"ok":false}'), 1_900_000_010)).toBe(false);
    expect(verifyCallbackSignature("whsec_test", header, body, 1_900_001_000)).toBe(false);
  });
});
