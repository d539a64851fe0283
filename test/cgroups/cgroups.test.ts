// How the gateway picks and drives cgroups. This machine's real hierarchy is exercised by
// every sandbox test (see health().cgroups); cgroup v2 delegation and the no-cgroup
// fallback are checked here against a prepared directory tree standing in for cgroupfs,
// with the same file names the kernel uses, since the host only offers one of the modes.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { setupCgroups } from "../../src/sandbox/cgroups/setup.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-cgroupfs-"));
  dirs.push(root);
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), content);
  }
  return root;
}

const read = (file: string) => fs.readFileSync(file, "utf8");

describe("cgroup v2", () => {
  function v2Host(own = "/system.slice/fngw.service") {
    const root = tree({
      [`fs${own}/cgroup.controllers`]: "cpuset cpu io memory pids\n",
      [`fs${own}/cgroup.procs`]: "4242\n",
      [`fs${own}/cgroup.type`]: "domain\n",
      [`fs${own}/cgroup.subtree_control`]: "",
      "proc-self-cgroup": `0::${own}\n`,
      mountinfo: "",
    });
    fs.writeFileSync(path.join(root, "mountinfo"), `30 23 0:26 / ${root}/fs rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n`);
    return { root, own: path.join(root, "fs", own) };
  }

  it("moves the gateway into a leaf, delegates memory and pids, and makes one cgroup per slot", () => {
    const { root, own } = v2Host();
    const cgroups = setupCgroups({ slots: 2, maxThreads: 64, procSelfCgroup: `${root}/proc-self-cgroup`, mountinfo: `${root}/mountinfo` });
    expect(cgroups.mode).toBe("v2");
    expect(read(`${own}/fngw-gateway/cgroup.procs`)).toBe("4242");
    expect(read(`${own}/cgroup.subtree_control`)).toBe("+memory +pids");
    const [group] = fs.readdirSync(own).filter((name) => /^fngw-\d+-\d+$/.test(name));
    expect(group).toBeDefined();
    expect(read(`${own}/${group}/cgroup.subtree_control`)).toBe("+memory +pids");
    for (const k of [0, 1]) expect(read(`${own}/${group}/slot-${k}/pids.max`)).toBe("64");

    const slot = cgroups.slot(1)!;
    slot.setMemoryLimit(128);
    expect(read(`${own}/${group}/slot-1/memory.max`)).toBe(String(128 * 1024 * 1024));
    expect(read(`${own}/${group}/slot-1/memory.swap.max`)).toBe("0");
    slot.join(777);
    expect(read(`${own}/${group}/slot-1/cgroup.procs`)).toBe("777");
    fs.writeFileSync(`${own}/${group}/slot-1/memory.events`, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
    expect(slot.oomKills()).toBe(1);
    slot.killAll();
    expect(read(`${own}/${group}/slot-1/cgroup.kill`)).toBe("1");
  });

  it("falls back when the memory controller is not delegated, saying why", () => {
    const { root, own } = v2Host();
    fs.writeFileSync(`${own}/cgroup.controllers`, "cpu pids\n");
    const cgroups = setupCgroups({ slots: 1, maxThreads: 64, procSelfCgroup: `${root}/proc-self-cgroup`, mountinfo: `${root}/mountinfo` });
    expect(cgroups.mode).toBe("none");
    expect(cgroups.slot(0)).toBeNull();
    expect(cgroups.notes.join("\n")).toMatch(/cgroup v2: the memory controller is not available/);
    expect(cgroups.notes.join("\n")).toMatch(/cgroup v1: the memory hierarchy is not mounted/);
  });
});

describe("no cgroups at all", () => {
  it("reports mode none with a note for each version it tried", () => {
    const root = tree({ "proc-self-cgroup": "0::/\n", mountinfo: "22 1 0:20 / / rw - ext4 /dev/vda rw\n" });
    const cgroups = setupCgroups({ slots: 1, maxThreads: 64, procSelfCgroup: `${root}/proc-self-cgroup`, mountinfo: `${root}/mountinfo` });
    expect(cgroups.mode).toBe("none");
    expect(cgroups.notes).toEqual(["cgroup v2: not mounted", "cgroup v1: the memory hierarchy is not mounted"]);
  });
});
