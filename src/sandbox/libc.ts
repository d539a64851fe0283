import fs from "node:fs";
import os from "node:os";
import koffi from "koffi";

// mount(2), umount2(2) and mknod(2) called directly through koffi: the jail is built
// with them at start-up and each invocation's /tmp is mounted and detached with them,
// so the hot path never shells out.

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MNT_DETACH = 0x2;

const libc = koffi.load("libc.so.6");
const mountFn = libc.func("int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)");
const umount2Fn = libc.func("int umount2(const char *target, int flags)");
// dev_t is 64 bits on x86_64 and aarch64 (glibc exports mknod itself since 2.33).
const mknodFn = libc.func("int mknod(const char *path, uint32_t mode, uint64_t dev)");
const S_IFCHR = 0o020000;
const fcntlFn = libc.func("int fcntl(int fd, int cmd, ...)");
const F_SETFD = 2;
const FD_CLOEXEC = 1;

const errnoNames = new Map(Object.entries(os.constants.errno).map(([name, value]) => [value, name]));

export class SyscallError extends Error {
  constructor(
    readonly syscall: string,
    readonly errno: number,
    detail: string,
  ) {
    super(`${syscall}(${detail}) failed: ${errnoNames.get(errno) ?? `errno ${errno}`}`);
    this.name = "SyscallError";
  }
}

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  if (mountFn(source, target, fstype, flags, data) !== 0) {
    throw new SyscallError("mount", koffi.errno(), `${source ?? "none"}, ${target}`);
  }
}

export function umount2(target: string, flags: number): void {
  if (umount2Fn(target, flags) !== 0) throw new SyscallError("umount2", koffi.errno(), target);
}

/** Creates a character device node with the device number `rdev` (as `stat` reports it). */
export function mknodChar(file: string, mode: number, rdev: number): void {
  if (mknodFn(file, S_IFCHR | mode, rdev) !== 0) throw new SyscallError("mknod", koffi.errno(), file);
  fs.chmodSync(file, mode); // the process umask applied to mknod's mode
}

/**
 * Marks every descriptor above stdio close-on-exec. A descriptor the gateway
 * inherited (from a supervisor, a shell redirect, socket activation) would
 * otherwise reach every sandbox; the lock-down refuses such files, so this
 * keeps a careless parent from failing every invocation.
 */
export function closeOnExecAll(): void {
  for (const name of fs.readdirSync("/proc/self/fd")) {
    const fd = Number(name);
    if (fd > 2) fcntlFn(fd, F_SETFD, "int", FD_CLOEXEC); // EBADF for the listing's own fd: harmless
  }
}
