// fngw-exec: starts a sandboxed interpreter with io_uring_setup answered ENOSYS.
//
//   fngw-exec PROGRAM ARGV0 [ARG...]
//
// Node's libuv (1.49 and later) sets up io_uring rings when its loops start, before the
// prescript runs, whatever UV_USE_IO_URING says, and aborts once the lock-down refuses
// io_uring_enter. Allowing io_uring_enter is not an option: a ring's operations (socket,
// connect, openat...) never pass through the seccomp filter. Failing io_uring_setup from the
// first instruction makes libuv fall back to plain epoll, as on a kernel without io_uring. The
// filter is inherited by the interpreter and stays (four instructions; every call it allows is
// cached as allowed by the kernel).
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 3) {
		fputs("usage: fngw-exec PROGRAM ARGV0 [ARG...]\n", stderr);
		return 127;
	}
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
	// Root may install a filter without no_new_privs; the lock-down sets it later anyway.
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
		perror("fngw-exec: seccomp");
		return 126;
	}
	execv(argv[1], argv + 2);
	perror("fngw-exec: execv");
	return 127;
}
