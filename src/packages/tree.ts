import fs from "node:fs";
import path from "node:path";

// Sealing an installer's output. The staging tree was written by the installer's uid, so it
// is never moved or chowned in place (a hard link or a file still held open could carry
// that uid's write access along): it is copied, entry by entry, into a new tree that root
// owns, with directories 0755 and files 0644. Only directories, regular files and links that
// stay inside the tree are copied; anything else (FIFOs, sockets, links pointing out) fails
// the seal, since a registry package has no reason to ship one.

export class SealError extends Error {}

export interface SealedTree {
  bytes: number;
  files: number;
}

/** Copies `source` to `target` (which must not exist) as a root-owned, read-only tree. */
export function sealTree(source: string, target: string, limits: { maxBytes: number; maxFiles: number }): SealedTree {
  const totals = { bytes: 0, files: 0 };
  const copy = (from: string, to: string, relative: string) => {
    const stat = fs.lstatSync(from);
    if (++totals.files > limits.maxFiles) throw new SealError(`the environment has more than ${limits.maxFiles} files`);
    if (stat.isDirectory()) {
      fs.mkdirSync(to, { mode: 0o755 });
      for (const name of fs.readdirSync(from).sort()) copy(path.join(from, name), path.join(to, name), path.join(relative, name));
      fs.chmodSync(to, 0o755);
    } else if (stat.isFile()) {
      totals.bytes += stat.size;
      if (totals.bytes > limits.maxBytes) throw new SealError(`the environment is larger than ${Math.floor(limits.maxBytes / 2 ** 20)} MB`);
      copyRegularFile(from, to);
    } else if (stat.isSymbolicLink()) {
      const link = fs.readlinkSync(from);
      const resolved = path.normalize(path.join(path.dirname(relative), link));
      if (path.isAbsolute(link) || resolved.startsWith("..")) throw new SealError(`${relative} links outside the environment (${link})`);
      fs.symlinkSync(link, to);
    } else {
      throw new SealError(`${relative} is neither a file, a directory nor a link`);
    }
    // Created by root: root owns it already; lchown makes that explicit for links too.
    fs.lchownSync(to, 0, 0);
  };
  try {
    copy(source, target, ".");
  } catch (error) {
    fs.rmSync(target, { recursive: true, force: true });
    throw error;
  }
  return totals;
}

/** Copies a regular file without following a link that might have replaced it since it was looked at. */
function copyRegularFile(from: string, to: string): void {
  const input = fs.openSync(from, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    if (!fs.fstatSync(input).isFile()) throw new SealError(`${from} changed while it was copied`);
    const output = fs.openSync(to, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
    try {
      const buffer = Buffer.allocUnsafe(1 << 20);
      for (let n = fs.readSync(input, buffer, 0, buffer.length, null); n > 0; n = fs.readSync(input, buffer, 0, buffer.length, null)) {
        fs.writeSync(output, buffer, 0, n);
      }
      fs.fchmodSync(output, 0o644);
    } finally {
      fs.closeSync(output);
    }
  } finally {
    fs.closeSync(input);
  }
}

/** Bytes of the regular files under `dir` (links not followed). */
export function treeBytes(dir: string): number {
  let bytes = 0;
  const walk = (current: string) => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) bytes += fs.lstatSync(full).size;
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return bytes;
}

/** Creates `dir` afresh, empty, owned by `uid`, mode 0700. */
export function freshOwnedDir(dir: string, uid: number): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.chownSync(dir, uid, uid);
}
