import { parseMountinfo } from "../mountinfo.js";
import { read } from "./files.js";
import type { CgroupOptions, Cgroups } from "./types.js";
import { setupV1 } from "./v1.js";
import { setupV2 } from "./v2.js";

export type { CgroupMode, CgroupOptions, Cgroups, SlotCgroup } from "./types.js";

let instances = 0;

export function setupCgroups(options: CgroupOptions): Cgroups {
  // One group per sandbox, named after the process that owns it: fngw-<pid>-<n>.
  const group = `fngw-${process.pid}-${++instances}`;
  const membership = parseMembership(read(options.procSelfCgroup ?? "/proc/self/cgroup"));
  const mounts = parseMountinfo(read(options.mountinfo ?? "/proc/self/mountinfo"));
  const notes: string[] = [];
  for (const attempt of [setupV2, setupV1]) {
    try {
      return attempt(options, group, membership, mounts);
    } catch (error) {
      notes.push((error as Error).message);
    }
  }
  return { mode: "none", notes, slot: () => null, close: () => {} };
}

/** `/proc/self/cgroup`: "hierarchy-id:controller,list:/path"; v2's line has an empty controller list. */
function parseMembership(text: string): Map<string, string> {
  const membership = new Map<string, string>();
  for (const line of text.split("\n").filter(Boolean)) {
    const [, controllers = "", cgroupPath = "/"] = line.split(":");
    for (const controller of controllers.split(",")) membership.set(controller, cgroupPath);
  }
  return membership;
}
