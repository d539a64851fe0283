// The jail. Longer than most files: the layout described below, building it, and mounting its
// per-slot overlays must agree line by line, so they stay on one page.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { PythonInstall } from "./binaries.js";
import {
  MNT_DETACH,
  MS_BIND,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  mknodChar,
  mount,
  umount2,
} from "./libc.js";
import { isMountPoint } from "./mountinfo.js";

// The jail is what a sandboxed process sees as "/" after chroot. It is built once
// at start-up on a tmpfs of its own:
//
//   JAIL_DIR/            tmpfs, private propagation
//     base/              the jail's own files, shared by the slots as an overlay layer:
//       etc/             passwd, group, hosts, resolv.conf, nsswitch.conf, ld.so.cache, localtime -> zoneinfo
//       lib/..., usr/lib/...   copies of the few shared libraries lib-dynload modules open
//       dev/, tmp/, and the mount points below
//     empty/             an empty directory: the second layer every read-only overlay needs
//     slots/<k>/         one sandbox slot's root, all read-only:
//       /                overlay of base/
//       usr/lib/pythonX.Y                  overlay of the Python standard library (see pythonJailDirs);
//                                          its site-packages hidden under an empty tmpfs
//       usr/share/zoneinfo, etc/ssl, usr/share/ca-certificates   overlays of the host's
//       dev/             a tmpfs of the slot's own null, zero, random, urandom nodes
//       tmp/             mount point for each invocation's private, size-bounded tmpfs
//       packages/        mount point for a function's package environment (docs/packages.md)
//       node_modules     symlink to packages/node_modules: Node resolves bare specifiers from there
//
// Nothing of the gateway (its data directory, its code, node_modules) is inside, and
// nothing of the host's layout: the standard library sits at a neutral path, whatever
// prefix the interpreter was installed under (a pyenv under /root, say).
//
// Why overlays rather than bind mounts: a file lock (flock, fcntl and OFD locks) belongs to
// an inode, and every bind of a file is the same inode. Through binds, one function's lock
// on /etc/passwd, /dev/null or a zoneinfo file was seen by a function running beside it (a
// covert channel) and held off any host process locking that file. Each overlay mount has
// inodes of its own, so a lock taken in a slot stays in that slot and never reaches the
// host's file; locking inside /tmp works as anywhere.

const DEVICES = ["null", "zero", "random", "urandom"];
const CA_CERTIFICATES = "/usr/share/ca-certificates";
const READ_ONLY = MS_RDONLY | MS_NOSUID | MS_NODEV;
const JAIL_TMPFS_SIZE = "256m";
const TMP_INODES = 16384;
/** Where a function's package environment appears inside the jail. */
export const PACKAGES_MOUNT = "/packages";

export interface SlotIdentity {
  uid: number;
  gid: number;
}

export interface JailOptions {
  dir: string;
  slots: SlotIdentity[];
  python: PythonInstall;
  tmpSizeMb: number;
}

export class Jail {
  private constructor(
    readonly dir: string,
    private readonly tmpSizeMb: number,
    private readonly slots: SlotIdentity[],
  ) {}

  /** Builds the jail from scratch, replacing whatever an earlier run left at `dir`. */
  static build(options: JailOptions): Jail {
    const { dir, slots, python } = options;
    detachAll(dir);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    mount("fngw-jail", dir, "tmpfs", MS_NOSUID | MS_NODEV, `size=${JAIL_TMPFS_SIZE},mode=0755`);
    try {
      mount(null, dir, null, MS_PRIVATE | MS_REC);
      const base = path.join(dir, "base");
      const empty = path.join(dir, "empty");
      fs.mkdirSync(empty, { mode: 0o755 });
      const layers = hostLayers(python);
      populateBase(base, slots, python, layers);
      for (let k = 0; k < slots.length; k++) {
        const root = path.join(dir, "slots", String(k));
        fs.mkdirSync(root, { recursive: true, mode: 0o755 });
        mountSlot(root, base, empty, layers);
      }
    } catch (error) {
      detachAll(dir);
      throw error;
    }
    return new Jail(dir, options.tmpSizeMb, slots);
  }

  /** The directory a sandbox in slot `k` chroots into. */
  root(k: number): string {
    return path.join(this.dir, "slots", String(k));
  }

  /** Mounts a fresh, empty, size-bounded /tmp owned by the slot's uid. */
  mountTmp(k: number): void {
    const { uid, gid } = this.slots[k]!;
    const options = `size=${this.tmpSizeMb}m,nr_inodes=${TMP_INODES},mode=0700,uid=${uid},gid=${gid}`;
    mount("fngw-tmp", path.join(this.root(k), "tmp"), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options);
  }

  /** Binds a package environment read-only (and without devices or set-uid) at the slot's /packages. */
  mountPackages(k: number, dir: string): void {
    const target = path.join(this.root(k), PACKAGES_MOUNT);
    mount(dir, target, null, MS_BIND | MS_REC);
    mount(null, target, null, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV);
  }

  /** Detaches the slot's /packages, leaving the empty mount point. */
  unmountPackages(k: number): void {
    const target = path.join(this.root(k), PACKAGES_MOUNT);
    if (isMountPoint(target)) umount2(target, MNT_DETACH);
  }

  /** Detaches the slot's /tmp; its files go with it. */
  unmountTmp(k: number): void {
    umount2(path.join(this.root(k), "tmp"), MNT_DETACH);
  }

  /** Whether the jail's tmpfs is still mounted (an operator's umount, or another process's, would leave it gone). */
  mounted(): boolean {
    return isMountPoint(this.dir);
  }

  close(): void {
    detachAll(this.dir);
  }
}

/** Lazily detaches every mount stacked on `dir` (a detach takes the whole subtree with it). */
function detachAll(dir: string): void {
  while (isMountPoint(dir)) umount2(dir, MNT_DETACH);
}

/** A host directory shown read-only in every slot, at `jailPath`. */
interface HostLayer {
  host: string;
  jailPath: string;
  /** A directory below it hidden under an empty tmpfs. */
  hidden?: string;
}

function hostLayers(python: PythonInstall): HostLayer[] {
  const layers: HostLayer[] = pythonJailDirs(python).map(({ host, jail }) => ({
    host,
    jailPath: jail,
    // Python runs with -S: third-party packages installed on the host stay out of sight.
    hidden: fs.existsSync(path.join(host, "site-packages")) ? "site-packages" : undefined,
  }));
  layers.push({ host: "/usr/share/zoneinfo", jailPath: "/usr/share/zoneinfo" });
  if (fs.existsSync("/etc/ssl")) {
    layers.push({ host: "/etc/ssl", jailPath: "/etc/ssl" });
    // The hashed links in /etc/ssl/certs point into /usr/share/ca-certificates.
    if (fs.existsSync(CA_CERTIFICATES)) layers.push({ host: CA_CERTIFICATES, jailPath: CA_CERTIFICATES });
  }
  return layers.filter((layer) => fs.existsSync(layer.host));
}

/**
 * Where the jail shows Python's library directories: the standard library at
 * /usr/lib/pythonX.Y (lib-dynload inside it, as usual), any other directory of sys.path
 * beside it as /usr/lib/pythonX.Y-<name>. prescripts/prescript.py maps sys.path and the
 * modules loaded before the lock-down by the same rule.
 */
export function pythonJailDirs(python: PythonInstall): { host: string; jail: string }[] {
  const stdlib = `/usr/lib/python${python.version.split(".").slice(0, 2).join(".")}`;
  return python.libraryDirs.map((host, i) => ({ host, jail: i === 0 ? stdlib : `${stdlib}-${path.basename(host)}` }));
}

/** Where the jail holds a copy of a shared library: its own path if that is a system one. */
function jailLibraryPath(library: string): string {
  return /^\/(usr\/)?lib(32|64)?\//.test(library) ? library : path.join("/usr/local/lib", path.basename(library));
}

/** Mounts slot root `root`: overlays of base/ and the host layers, its own /dev; all read-only. */
function mountSlot(root: string, base: string, empty: string, layers: HostLayer[]): void {
  mountOverlay(base, empty, root);
  for (const layer of layers) {
    const target = path.join(root, layer.jailPath);
    mountOverlay(layer.host, empty, target);
    if (layer.hidden) mount("fngw-empty", path.join(target, layer.hidden), "tmpfs", READ_ONLY | MS_NOEXEC, "size=4k,mode=0555");
  }
  // Device nodes of the slot's own: a bind of the host's /dev/null would be one inode for
  // every slot and the host, and so one set of locks.
  const dev = path.join(root, "dev");
  mount("fngw-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=4k,nr_inodes=16,mode=0755");
  for (const device of DEVICES) mknodChar(path.join(dev, device), 0o666, fs.statSync(`/dev/${device}`).rdev);
  mount(null, dev, null, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "size=4k,nr_inodes=16,mode=0755");
}

/** A read-only overlay of `lower` at `target` (a second, empty layer: overlayfs needs two without an upper one). */
function mountOverlay(lower: string, empty: string, target: string): void {
  // Overlay options separate layers with ':' and options with ','.
  if (/[:,\\]/.test(lower)) throw new Error(`cannot show ${lower} in the jail: its path holds ':', ',' or '\\'`);
  mount("fngw-layer", target, "overlay", READ_ONLY, `lowerdir=${lower}:${empty}`);
}

function populateBase(base: string, slots: SlotIdentity[], python: PythonInstall, layers: HostLayer[]): void {
  const inside = (p: string) => path.join(base, p);
  for (const d of ["etc", "dev", "tmp", PACKAGES_MOUNT, ...layers.map((l) => l.jailPath)])
    fs.mkdirSync(inside(d), { recursive: true, mode: 0o755 });
  // Node looks for bare specifiers in /node_modules when walking up from /function.js or /tmp.
  fs.symlinkSync("packages/node_modules", inside("node_modules"));

  const users = slots.map(({ uid, gid }, k) => ({ name: `sandbox${k}`, uid, gid }));
  writeFile(inside("etc/passwd"), [
    "root:x:0:0:root:/root:/usr/sbin/nologin",
    ...users.map((u) => `${u.name}:x:${u.uid}:${u.gid}:sandbox:/tmp:/usr/sbin/nologin`),
  ]);
  writeFile(inside("etc/group"), ["root:x:0:", ...users.map((u) => `${u.name}:x:${u.gid}:`)]);
  writeFile(inside("etc/hosts"), ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]);
  writeFile(inside("etc/nsswitch.conf"), ["passwd: files", "group: files", "hosts: files dns"]);
  copyIfPresent("/etc/resolv.conf", inside("etc/resolv.conf"));
  // A symlink, not a copy: ICU derives the zone name from the link target.
  fs.symlinkSync(hostLocaltime(), inside("etc/localtime"));

  const libraries = python.sharedLibraries.map((host) => ({ host, jail: jailLibraryPath(host) }));
  for (const { host, jail } of libraries) {
    fs.mkdirSync(path.dirname(inside(jail)), { recursive: true, mode: 0o755 });
    fs.copyFileSync(fs.realpathSync(host), inside(jail));
  }
  const libraryDirs = [...new Set(libraries.map((l) => path.dirname(l.jail)))];
  writeFile(inside("etc/ld.so.conf"), libraryDirs);
  if (libraryDirs.length > 0) execFileSync("ldconfig", ["-r", base], { stdio: ["ignore", "ignore", "pipe"] });

  if (fs.existsSync("/etc/ssl")) mirrorOpensslDir(base);
  for (const file of ["etc/passwd", "etc/group", "etc/hosts", "etc/nsswitch.conf", "etc/ld.so.conf"]) fs.chmodSync(inside(file), 0o644);
}

/** OpenSSL looks for CA certificates in its OPENSSLDIR (Debian: /usr/lib/ssl, symlinks into /etc/ssl). */
function mirrorOpensslDir(base: string): void {
  const dir = "/usr/lib/ssl";
  if (!fs.existsSync(dir)) return;
  fs.mkdirSync(path.join(base, dir), { recursive: true, mode: 0o755 });
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(path.join(dir, entry.name)), path.join(base, dir, entry.name));
  }
}

function hostLocaltime(): string {
  try {
    const target = fs.realpathSync("/etc/localtime");
    if (target.startsWith("/usr/share/zoneinfo/")) return target;
  } catch {
    // no /etc/localtime on the host: UTC
  }
  return "/usr/share/zoneinfo/Etc/UTC";
}

function copyIfPresent(source: string, target: string): void {
  try {
    fs.copyFileSync(source, target);
    fs.chmodSync(target, 0o644);
  } catch {
    writeFile(target, []);
  }
}

function writeFile(file: string, lines: string[]): void {
  fs.writeFileSync(file, lines.length ? `${lines.join("\n")}\n` : "", { mode: 0o644 });
}
