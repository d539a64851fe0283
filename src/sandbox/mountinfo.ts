import fs from "node:fs";
import path from "node:path";

/** One line of `/proc/self/mountinfo`, as the cgroup set-up and the jail need it. */
export interface Mount {
  /** The mount point, octal escapes (`\040` for a space) decoded. */
  point: string;
  fstype: string;
  superOptions: string[];
}

/** The mount point is field 5; after " - " come the fstype, the source and the super options. */
export function parseMountinfo(text: string): Mount[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [before = "", after = ""] = line.split(" - ");
      const [fstype = "", , superOptions = ""] = after.split(" ");
      return { point: unescapeMountPath(before.split(" ")[4] ?? ""), fstype, superOptions: superOptions.split(",") };
    });
}

export function isMountPoint(dir: string): boolean {
  const target = path.resolve(dir);
  return parseMountinfo(fs.readFileSync("/proc/self/mountinfo", "utf8")).some((m) => m.point === target);
}

function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
