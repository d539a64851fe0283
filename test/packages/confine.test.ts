import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { confinement } from "../../src/packages/confine.js";
import { installerEnv } from "../../src/packages/installer.js";
import { resolveInterpreters } from "../../src/sandbox/binaries.js";
import { installerUid } from "./harness.js";

// What an installer process is: checked on a shell run exactly as pip and npm are.

const stash = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-confine-"));
afterAll(() => fs.rmSync(stash, { recursive: true, force: true }));

describe("the installers' confinement", () => {
  const python = resolveInterpreters(process.env.PYTHON_BIN ?? "python3", process.execPath).python;
  const prefix = path.dirname(path.dirname(python.binary));
  const uid = installerUid();

  function runConfined(script: string) {
    const [command, ...args] = confinement([prefix], stash).wrap(uid, ["/bin/sh", "-c", script]);
    process.env.GATEWAY_TOKEN ??= "a-gateway-secret-never-to-be-seen";
    const result = spawnSync(command!, args, { env: installerEnv("/nonexistent"), encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    return result.stdout;
  }

  it("runs as the installers' uid, with no groups, no capabilities and no_new_privs", () => {
    const out = runConfined("id -u; id -g; id -G; grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd|CapAmb):' /proc/self/status");
    expect(out).toBe(
      `${uid}\n${uid}\n${uid}\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n`,
    );
  });

  it("sees only the environment it is given: no gateway token or settings", () => {
    const names = runConfined("env")
      .split("\n")
      .filter(Boolean)
      .map((line) => line.split("=")[0]!)
      .sort();
    expect(names).toEqual(expect.arrayContaining(["HOME", "LANG", "PATH", "TMPDIR"]));
    expect(
      names.filter(
        (name) =>
          !["HOME", "LANG", "PATH", "TMPDIR", "PIP_NO_CACHE_DIR", "npm_config_cache", "NODE_USE_SYSTEM_CA", "PWD", "SHLVL", "_"].includes(
            name,
          ),
      ),
    ).toEqual([]);
  });

  it("reaches the gateway's own Python, while what hid it stays hidden and the host sees no mount", () => {
    const out = runConfined(`'${python.binary}' -I -c 'import sys, pip; print(sys.version.split()[0])'`);
    expect(out.trim()).toBe(python.version);
    const blocked = prefix.split("/").slice(0, 2).join("/"); // e.g. /root, when the prefix lives there
    if ((fs.statSync(blocked).mode & 0o001) === 0) {
      expect(runConfined(`ls -A '${blocked}'`).trim()).toBe(prefix.split("/")[2]!);
    }
    // Other checkouts mount and unmount at the same time: look for this namespace's own mounts only.
    const hostMounts = fs.readFileSync("/proc/self/mountinfo", "utf8");
    expect(hostMounts).not.toContain("fngw-hidden");
    expect(hostMounts).not.toContain(stash);
  });
});
