import os from "node:os";
import koffi from "koffi";
import { SyscallError } from "./libc.js";

// pipe2(2), socketpair(2) and sendmsg(2) with SCM_RIGHTS, through koffi: Node's own API can
// neither create a bare pipe nor pass a descriptor to another process. The Python fork-server
// receives each invocation's channels this way (src/sandbox/forkserver.ts). Every descriptor
// made here is close-on-exec, so no interpreter spawned meanwhile inherits one.

const libc = koffi.load("libc.so.6");
const pipe2Fn = libc.func("int pipe2(_Out_ int *fds, int flags)");
const socketpairFn = libc.func("int socketpair(int domain, int type, int protocol, _Out_ int *fds)");
const closeFn = libc.func("int close(int fd)");
const Iovec = koffi.struct("fngw_iovec", { iov_base: "void *", iov_len: "size_t" });
const Msghdr = koffi.struct("fngw_msghdr", {
  msg_name: "void *",
  msg_namelen: "uint32_t",
  msg_iov: koffi.pointer(Iovec),
  msg_iovlen: "size_t",
  msg_control: "void *",
  msg_controllen: "size_t",
  msg_flags: "int",
});
const sendmsgFn = libc.func("sendmsg", "intptr_t", ["int", koffi.pointer(Msghdr), "int"]);
const recvmsgFn = libc.func("recvmsg", "intptr_t", ["int", koffi.inout(koffi.pointer(Msghdr)), "int"]);

const O_CLOEXEC = 0o2000000;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
/** sizeof(struct cmsghdr) on the 64-bit Linux ABIs (x86_64, aarch64): size_t len, int level, int type. */
const CMSG_HEADER = 16;

if (os.endianness() !== "LE" || process.arch.length === 0 || !["x64", "arm64"].includes(process.arch)) {
  throw new Error(`descriptor passing is laid out for 64-bit little-endian Linux, not ${process.arch}`);
}

/** A pipe: [read end, write end], both close-on-exec. */
export function pipe(): [number, number] {
  const fds = [0, 0];
  if (pipe2Fn(fds, O_CLOEXEC) !== 0) throw new SyscallError("pipe2", koffi.errno(), "O_CLOEXEC");
  return [fds[0]!, fds[1]!];
}

function socketPair(type: number): [number, number] {
  const fds = [0, 0];
  if (socketpairFn(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) !== 0) throw new SyscallError("socketpair", koffi.errno(), "AF_UNIX");
  return [fds[0]!, fds[1]!];
}

/** A connected pair of Unix stream sockets: what Node gives a spawned process as its stdio "pipes". */
export function streamPair(): [number, number] {
  return socketPair(SOCK_STREAM);
}

/** A connected pair of Unix sequenced-packet sockets (one message per send, descriptors attached to it). */
export function seqpacketPair(): [number, number] {
  return socketPair(SOCK_SEQPACKET);
}

export function closeFd(fd: number): void {
  closeFn(fd);
}

/** A msghdr of one buffer and a control buffer, no address. */
function messageHeader(data: Buffer, control: Buffer) {
  return {
    msg_name: null,
    msg_namelen: 0,
    msg_iov: { iov_base: data, iov_len: data.length },
    msg_iovlen: 1,
    msg_control: control,
    msg_controllen: control.length,
    msg_flags: 0,
  };
}

/**
 * Sends `message` with `fds` attached on a Unix socket, without blocking: a peer that has
 * stopped reading makes this throw (EAGAIN) instead of stalling the event loop.
 */
export function sendFds(socket: number, message: Buffer, fds: readonly number[]): void {
  const dataLength = 4 * fds.length;
  const control = Buffer.alloc(CMSG_HEADER + Math.ceil(dataLength / 8) * 8);
  control.writeBigUInt64LE(BigInt(CMSG_HEADER + dataLength), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  for (const [i, fd] of fds.entries()) control.writeInt32LE(fd, CMSG_HEADER + 4 * i);
  const header = messageHeader(message, control);
  const sent = Number(sendmsgFn(socket, header, MSG_DONTWAIT | MSG_NOSIGNAL));
  if (sent !== message.length) throw new SyscallError("sendmsg", sent < 0 ? koffi.errno() : 0, `fd ${socket}`);
}

/**
 * Takes the one descriptor a peer sent (SCM_RIGHTS) with its first message on a Unix socket,
 * without blocking; null when no message is waiting or it carried no descriptor. Any other
 * descriptor in the message is closed.
 */
export function receiveFd(socket: number): number | null {
  const data = Buffer.alloc(16);
  const control = Buffer.alloc(CMSG_HEADER + 8 * 4);
  const header = messageHeader(data, control);
  const received = Number(recvmsgFn(socket, header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
  if (received < 0 || header.msg_controllen < CMSG_HEADER) return null;
  const length = Number(control.readBigUInt64LE(0));
  if (control.readInt32LE(8) !== SOL_SOCKET || control.readInt32LE(12) !== SCM_RIGHTS || length < CMSG_HEADER + 4) return null;
  const fds = Array.from({ length: Math.floor((length - CMSG_HEADER) / 4) }, (_, i) => control.readInt32LE(CMSG_HEADER + 4 * i));
  for (const extra of fds.slice(1)) closeFd(extra);
  return fds[0]!;
}
