// Escape attempts on identity and privilege: uids and groups, mounts, chroot and namespaces, and
// the gateway's own credentials in its environment.
// How the attacks are written and run, and what the policy answers: ./attacks.ts.
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import {
  attack,
  host,
  MAX_CONCURRENCY,
  observe,
  outcome,
  py,
  RUNTIMES,
  SECRET_DB_PASSWORD,
  SECRET_TOKEN,
  UID_BASE,
  useAttackedSandbox,
} from "./attacks.js";

useAttackedSandbox();

describe("changing identity", () => {
  it.each(RUNTIMES)("%s: cannot setuid(0) or setgid(0), and stays on its unprivileged uid", async (runtime) => {
    const seen = await observe(
      runtime,
      attack(
        runtime,
        `return {"setuid": attempt(os.setuid, 0), "setgid": attempt(os.setgid, 0), "setresuid": attempt(os.setresuid, 0, 0, 0),
                 "setgroups": attempt(os.setgroups, [0]), "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()], "groups": os.getgroups()}`,
        `return { setuid: attempt(() => process.setuid(0)), setgid: attempt(() => process.setgid(0)), seteuid: attempt(() => process.seteuid(0)),
                  setgroups: attempt(() => process.setgroups([0])), ids: [process.getuid(), process.geteuid(), process.getgid(), process.getegid()],
                  groups: process.getgroups() };`,
      ),
    );
    for (const what of ["setuid", "setgid", "setgroups", runtime === "python" ? "setresuid" : "seteuid"]) {
      expect(outcome(seen[what]), what).toEqual({ ok: false, code: "EPERM" });
    }
    const [uid, euid, gid, egid] = seen.ids as number[];
    expect(uid).toBeGreaterThanOrEqual(UID_BASE);
    expect(uid).toBeLessThan(UID_BASE + MAX_CONCURRENCY);
    expect([euid, gid, egid]).toEqual([uid, uid, uid]);
    // No supplementary groups (Node's getgroups() adds the effective gid to the list).
    expect((seen.groups as number[]).filter((g) => g !== egid)).toEqual([]);
  });
});

// Node has no API for ptrace, mount, chroot or unshare: without native code it cannot even
// try them. Python reaches them through ctypes (stdlib). Node's only route to native code,
// re-opening the koffi addon the prescript loaded, is covered in library.test.ts.
describe("mount, chroot and namespaces", () => {
  it("python: mounting a tmpfs fails with EPERM", async () => {
    const seen = await observe(
      "python",
      py(`
        return {"tmpfs": libc_call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
                "bind": libc_call("mount", b"/", b"/tmp", None, 0x1000, None),
                "umount": libc_call("umount2", b"/tmp", 2)}
      `),
    );
    expect(seen).toEqual({ tmpfs: { ret: -1, errno: "EPERM" }, bind: { ret: -1, errno: "EPERM" }, umount: { ret: -1, errno: "EPERM" } });
  });

  it("python: os.chroot raises PermissionError", async () => {
    const seen = await observe("python", py(`return {"chroot": attempt(os.chroot, "/tmp"), "root": sorted(os.listdir("/"))}`));
    expect(seen.chroot).toEqual({ ok: false, error: "PermissionError", errno: "EPERM" });
    expect(seen.root).toEqual(fs.readdirSync(host.jailBase).sort());
  });

  it("python: unshare of user, mount and pid namespaces fails with EPERM", async () => {
    // os.unshare arrived in Python 3.12; ctypes reaches the same call on any version.
    const seen = await observe(
      "python",
      py(`
        flags = {"user": 0x10000000, "mount": 0x00020000, "pid": 0x20000000, "net": 0x40000000}
        out = {name: libc_call("unshare", flag) for name, flag in flags.items()}
        if hasattr(os, "unshare"):
            out["os.unshare"] = attempt(os.unshare, flags["user"])
        out["setns"] = libc_call("setns", 0, 0)
        return out
      `),
    );
    for (const ns of ["user", "mount", "pid", "net"]) expect(seen[ns], ns).toEqual({ ret: -1, errno: "EPERM" });
    if ("os.unshare" in seen) expect(seen["os.unshare"]).toEqual({ ok: false, error: "PermissionError", errno: "EPERM" });
    expect(seen.setns).toEqual({ ret: -1, errno: "EPERM" });
  });
});

describe("the gateway's secrets", () => {
  it.each(RUNTIMES)("%s: the environment holds only PATH, HOME, TMPDIR, LANG and the function's own variables", async (runtime) => {
    expect(process.env.GATEWAY_TOKEN).toBe(SECRET_TOKEN);
    const seen = await observe(runtime, attack(runtime, `return dict(os.environ)`, `return { ...process.env };`), {
      env: { FN_GREETING: "hello" },
    });
    expect(Object.keys(seen).sort()).toEqual(["FN_GREETING", "HOME", "LANG", "PATH", "TMPDIR"]);
    expect(seen.FN_GREETING).toBe("hello");
    const dump = JSON.stringify(seen);
    for (const secret of [SECRET_TOKEN, SECRET_DB_PASSWORD, "GATEWAY_TOKEN", "FNGW_DB_PASSWORD"]) expect(dump).not.toContain(secret);
  });
});
