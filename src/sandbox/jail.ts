import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { PythonInstall } from "./interpreters.js";
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
  mount,
  umount2,
} from "./libc.js";

// The jail is what a sandboxed process sees as "/" after chroot. It is built once
// at start-up on a tmpfs of its own:
//
//   JAIL_DIR/            tmpfs, private propagation
//     base/              the root file system every sandbox shares, read-only:
//       etc/             passwd, group, hosts, resolv.conf, nsswitch.conf, ld.so.cache, localtime -> zoneinfo
//       etc/ssl, usr/share/ca-certificates   binds of the host's, read-only (CA certificates for functions with network)
//       dev/null|zero|random|urandom   binds of the host's device nodes
//       usr/share/zoneinfo             bind, read-only
//       <python stdlib>                bind, read-only, at the host path (Python imports lazily);
//                                      its site-packages hidden under an empty tmpfs
//       lib/...                        copies of the few shared libraries lib-dynload modules open
//       tmp/             mount point for each invocation's private tmpfs
//       packages/        mount point for a function's package environment (docs/packages.md)
//       node_modules     symlink to packages/node_modules: Node resolves bare specifiers from there
//     slots/<k>/         a recursive, read-only bind of base/ per sandbox slot; the
//                        slot's /tmp is a fresh size-bounded tmpfs per invocation
//
// Nothing of the gateway (its data directory, its code, node_modules) is inside.

const DEVICES = ["null", "zero", "random", "urandom"];
const CA_CERTIFICATES = "/usr/share/ca-certificates";
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
      populateBase(base, slots, python);
      for (let k = 0; k < slots.length; k++) {
        const root = path.join(dir, "slots", String(k));
        fs.mkdirSync(root, { recursive: true, mode: 0o755 });
        mount(base, root, null, MS_BIND | MS_REC);
        mount(null, root, null, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV);
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

  close(): void {
    detachAll(this.dir);
  }
}

/** Lazily detaches every mount stacked on `dir` (a detach takes the whole subtree with it). */
function detachAll(dir: string): void {
  while (isMountPoint(dir)) umount2(dir, MNT_DETACH);
}

function isMountPoint(dir: string): boolean {
  const target = path.resolve(dir);
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((line) => unescapeMountPath(line.split(" ")[4] ?? "") === target);
}

function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

function populateBase(base: string, slots: SlotIdentity[], python: PythonInstall): void {
  const inside = (p: string) => path.join(base, p);
  for (const d of ["etc", "dev", "tmp", "usr/share/zoneinfo", PACKAGES_MOUNT]) fs.mkdirSync(inside(d), { recursive: true, mode: 0o755 });
  // Node looks for bare specifiers in /node_modules when walking up from /function.js or /tmp.
  fs.symlinkSync("packages/node_modules", inside("node_modules"));

  const users = slots.map(({ uid, gid }, k) => ({ name: `sandbox${k}`, uid, gid }));
  writeFile(inside("etc/passwd"), ["root:x:0:0:root:/root:/usr/sbin/nologin", ...users.map((u) => `${u.name}:x:${u.uid}:${u.gid}:sandbox:/tmp:/usr/sbin/nologin`)]);
  writeFile(inside("etc/group"), ["root:x:0:", ...users.map((u) => `${u.name}:x:${u.gid}:`)]);
  writeFile(inside("etc/hosts"), ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]);
  writeFile(inside("etc/nsswitch.conf"), ["passwd: files", "group: files", "hosts: files dns"]);
  copyIfPresent("/etc/resolv.conf", inside("etc/resolv.conf"));
  // A symlink, not a copy: ICU derives the zone name from the link target.
  fs.symlinkSync(hostLocaltime(), inside("etc/localtime"));

  for (const library of python.sharedLibraries) {
    fs.mkdirSync(path.dirname(inside(library)), { recursive: true, mode: 0o755 });
    fs.copyFileSync(fs.realpathSync(library), inside(library));
  }
  const libraryDirs = [...new Set(python.sharedLibraries.map((l) => path.dirname(l)))];
  writeFile(inside("etc/ld.so.conf"), libraryDirs);
  if (libraryDirs.length > 0) execFileSync("ldconfig", ["-r", base], { stdio: ["ignore", "ignore", "pipe"] });

  for (const device of DEVICES) {
    writeFile(inside(`dev/${device}`), []);
    mount(`/dev/${device}`, inside(`dev/${device}`), null, MS_BIND);
  }
  bindReadOnly("/usr/share/zoneinfo", inside("usr/share/zoneinfo"));
  if (fs.existsSync("/etc/ssl")) {
    fs.mkdirSync(inside("etc/ssl"), { mode: 0o755 });
    bindReadOnly("/etc/ssl", inside("etc/ssl"));
    mirrorOpensslDir(base);
    // The hashed links in /etc/ssl/certs point into /usr/share/ca-certificates.
    fs.mkdirSync(inside(CA_CERTIFICATES), { recursive: true, mode: 0o755 });
    bindReadOnly(CA_CERTIFICATES, inside(CA_CERTIFICATES));
  }
  for (const dir of python.libraryDirs) {
    fs.mkdirSync(inside(dir), { recursive: true, mode: 0o755 });
    bindReadOnly(dir, inside(dir));
    // Python runs with -S: third-party packages installed on the host stay out of sight.
    const sitePackages = path.join(dir, "site-packages");
    if (fs.existsSync(sitePackages)) mount("fngw-empty", inside(sitePackages), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555");
  }
  for (const file of ["etc/passwd", "etc/group", "etc/hosts", "etc/nsswitch.conf", "etc/ld.so.conf"]) fs.chmodSync(inside(file), 0o644);
}

function bindReadOnly(source: string, target: string): void {
  if (!fs.existsSync(source)) return;
  mount(source, target, null, MS_BIND | MS_REC);
  mount(null, target, null, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV);
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
  fs.writeFileSync(file, lines.length ? lines.join("\n") + "\n" : "", { mode: 0o644 });
}
