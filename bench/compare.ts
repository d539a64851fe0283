/**
 * Two runs of `npm run bench` side by side, case by case (e.g. the same code on SQLite and on
 * PostgreSQL): throughput and p50 of the second over the first.
 *   npx tsx bench/compare.ts bench/results/<first>.json bench/results/<second>.json
 */
import fs from "node:fs";
import type { Figures } from "./lib/stats.js";
import { table } from "./lib/stats.js";

interface Run {
  settings: { store?: string };
  environment: { loadAverage: { before: number[] } };
  results: { mode: string; runtime: string; kind: string; concurrency: number | "idle"; figures: Figures }[];
}

const [firstFile, secondFile] = process.argv.slice(2);
if (!firstFile || !secondFile) {
  console.error("usage: npx tsx bench/compare.ts FIRST.json SECOND.json");
  process.exit(2);
}
const read = (file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as Run;
const first = read(firstFile);
const second = read(secondFile);
const key = (r: Run["results"][number]) => `${r.mode} ${r.runtime} ${r.kind} ${r.concurrency}`;
const seconds = new Map(second.results.map((r) => [key(r), r]));
const fmt = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : "-");
const rows = first.results
  .filter((r) => r.kind !== "spawn" && seconds.has(key(r)))
  .map((r) => {
    const other = seconds.get(key(r))!;
    return [
      `${r.runtime} ${r.kind}`,
      r.mode,
      String(r.concurrency),
      r.figures.throughput.toFixed(1),
      other.figures.throughput.toFixed(1),
      r.concurrency === "idle" ? "-" : `${fmt(other.figures.throughput / r.figures.throughput)}x`,
      `${fmt(other.figures.p50 / r.figures.p50)}x`,
    ];
  });
const name = (run: Run, file: string) => run.settings.store ?? file;
console.log(
  `${name(first, firstFile)} (load ${first.environment.loadAverage.before[0]?.toFixed(1)}) against ${name(second, secondFile)} (load ${second.environment.loadAverage.before[0]?.toFixed(1)})\n`,
);
console.log(
  table(["case", "isolation", "c", `req/s ${name(first, "first")}`, `req/s ${name(second, "second")}`, "tput ratio", "p50 ratio"], rows),
);
