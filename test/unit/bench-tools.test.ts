import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

// The bench's tools are documented in docs/performance.md; one that no longer applies to the
// code it measures is a broken tool.

describe("bench/phases/instrumentation.patch", () => {
  it("applies to the prescripts as they are", () => {
    const check = () => execFileSync("git", ["apply", "--check", "bench/phases/instrumentation.patch"], { stdio: "pipe" });
    expect(check).not.toThrow();
  });
});
