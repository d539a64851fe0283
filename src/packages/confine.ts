import fs from "node:fs";
import path from "node:path";

// How an installer becomes its own unprivileged uid while still reaching the interpreter it
// must use. The interpreters may live below a directory other users cannot traverse (pyenv
// under /root, whose binary also finds libpython through an absolute RPATH there), so the
// installer runs in a private mount namespace (util-linux `unshare`) in which each such
// directory is covered by an empty tmpfs and only the interpreter's own directory is bound
// back, read-only, at its real path. Then `setpriv` drops to the uid with no groups, no
// capabilities and no_new_privs before pip or npm starts. Nothing mounted there is seen by
// the host (private propagation), and root's home stays hidden from the installer.

export interface Confinement {
  /** The command line that runs `command` confined. */
  wrap(uid: number, command: string[]): string[];
}

/** `reach`: directories the installer must read (interpreter prefixes, npm). `stash`: a root-owned directory for the namespace's scratch mounts. */
export function confinement(reach: string[], stash: string): Confinement {
  const unshare = findOnPath("unshare");
  const setpriv = findOnPath("setpriv");
  const needed = [...new Set(reach.map((p) => fs.realpathSync(p)))];
  const blocked = needed
    .map((p) => [p, firstUntraversable(p)] as const)
    .filter((pair): pair is readonly [string, string] => pair[1] !== null);
  const lines = ["set -eu", "mount --make-rprivate /"];
  for (const [k, [dir]] of blocked.entries()) lines.push(`mkdir -p ${q(`${stash}/${k}`)}`, `mount --rbind ${q(dir)} ${q(`${stash}/${k}`)}`);
  const hidden: string[] = [];
  for (const cover of [...new Set(blocked.map(([, cover]) => cover))].sort((a, b) => a.length - b.length)) {
    if (hidden.some((h) => isInside(cover, h))) continue;
    hidden.push(cover);
    lines.push(`mount -t tmpfs -o mode=0755,size=64k,nosuid,nodev fngw-hidden ${q(cover)}`);
  }
  for (const [k, [dir]] of blocked.entries()) {
    lines.push(`mkdir -p ${q(dir)}`, `mount --move ${q(`${stash}/${k}`)} ${q(dir)}`, `mount -o remount,bind,ro,nosuid,nodev ${q(dir)}`);
  }
  const script = [
    ...lines,
    `uid=$1; shift`,
    `exec ${q(setpriv)} --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"`,
  ].join("\n");
  return {
    wrap: (uid, command) => [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script, "confine", String(uid), ...command],
  };
}

/** The outermost directory on the way to `dir` (itself included) that others may not search, or null. */
function firstUntraversable(dir: string): string | null {
  let current = "/";
  for (const part of dir.split("/").filter(Boolean)) {
    current = path.join(current, part);
    if ((fs.statSync(current).mode & 0o001) === 0) return current;
  }
  return null;
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

function q(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function findOnPath(command: string): string {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    const candidate = path.join(dir, command);
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`${command} (util-linux) is needed to confine package installers and was not found on PATH`);
}
