import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/core/config.js";

// The package installers' uids (PACKAGES_UID and the PACKAGES_PARALLEL - 1 below it) are checked
// against the sandbox uids (SANDBOX_UID_BASE .. + MAX_CONCURRENCY - 1) when the configuration loads.

describe("PACKAGES_UID against the sandbox uids", () => {
  it.each([
    ["the defaults (199999 just below 200000)", {}],
    [
      "installers above the sandbox range",
      { SANDBOX_UID_BASE: "300000", MAX_CONCURRENCY: "8", PACKAGES_UID: "300008", PACKAGES_PARALLEL: "1" },
    ],
    ["parallel installers ending just below it", { SANDBOX_UID_BASE: "300000", PACKAGES_UID: "299999", PACKAGES_PARALLEL: "4" }],
  ])("accepts %s", (_what, env) => {
    expect(() => loadConfig(env)).not.toThrow();
  });

  it.each([
    ["the first sandbox uid", { SANDBOX_UID_BASE: "300000", PACKAGES_UID: "300000" }],
    ["the last sandbox uid", { SANDBOX_UID_BASE: "300000", MAX_CONCURRENCY: "8", PACKAGES_UID: "300007" }],
    [
      "a parallel installer's uid reaching into the range",
      { SANDBOX_UID_BASE: "300000", MAX_CONCURRENCY: "8", PACKAGES_UID: "300010", PACKAGES_PARALLEL: "4" },
    ],
  ])("refuses %s, saying which uids overlap", (_what, env) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(/PACKAGES_UID: the installers' uids \d+\.\.\d+ overlap the sandbox uids 300000\.\.\d+/);
  });

  it("reads every package setting from the one configuration", () => {
    const config = loadConfig({
      PACKAGES_MAX_MB: "10",
      PACKAGES_GRACE_MS: "0",
      PACKAGES_SWEEP_INTERVAL_MS: "5000",
      PACKAGES_STAGING_DIR: "/var/tmp/x",
    });
    expect(config).toMatchObject({
      PACKAGES_UID: 199_999,
      PACKAGES_MAX_MB: 10,
      PACKAGES_PARALLEL: 1,
      PACKAGES_GRACE_MS: 0,
      PACKAGES_SWEEP_INTERVAL_MS: 5000,
      PACKAGES_STAGING_DIR: "/var/tmp/x",
    });
  });
});
