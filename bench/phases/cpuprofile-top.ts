/**
 * The gateway's CPU profile summed up: self time by function and by package.
 *   npx tsx bench/phases/cpuprofile-top.ts <file.cpuprofile> [top=25]
 * (Profiles come from `npm run bench -- --cpu-prof <dir>`.)
 */
import fs from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, topText] = process.argv.slice(2);
if (!file) throw new Error("usage: cpuprofile-top.ts <file.cpuprofile> [top]");
const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
const top = Number(topText ?? 25);

// Self time per node: each sample's delta goes to the node sampled.
const selfUs = new Map<number, number>();
for (const [i, id] of profile.samples.entries()) selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
const byId = new Map(profile.nodes.map((node) => [node.id, node]));

function packageOf(url: string, name: string): string {
  if (url === "") return name.startsWith("(") ? name : "(native)";
  const inModules = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (inModules) return inModules[1]!;
  if (url.startsWith("node:")) return url.split("/").slice(0, 3).join("/");
  const own = url.match(/\/(src\/[^/]+)\//);
  return own ? own[1]! : url;
}

const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  const key = `${functionName || "(anonymous)"} ${url.replace(/^.*node_modules\//, "")}:${lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  const pkg = packageOf(url, functionName);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
}
const totalUs = profile.endTime - profile.startTime;
const show = (title: string, entries: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [key, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms  ${((100 * us) / totalUs).toFixed(1).padStart(5)}%  ${key}`);
  }
};
console.log(`profile of ${(totalUs / 1e6).toFixed(1)} s`);
show("self time by package", byPackage);
show("self time by function", byFunction);
