// Build and run as root: gcc -O2 -o /tmp/user_notif user_notif.c -lpthread && /tmp/user_notif
// Probe: can the parent (root) take a child's seccomp listener with pidfd_getfd and read the
// trapped syscall number from the kernel? TSYNC with NEW_LISTENER needs TSYNC_ESRCH (5.7+).
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/audit.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4)
#endif
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static void *idle(void *a) { (void)a; for (;;) pause(); return NULL; }
int main(void) {
	int up[2], down[2];
	pipe(up); pipe(down);
	pid_t pid = fork();
	if (pid == 0) {
		pthread_t t; pthread_create(&t, NULL, idle, NULL);
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_syslog, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { .len = 4, .filter = f };
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		double t0 = now();
		long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH, &prog);
		double t1 = now();
		if (fd < 0) { perror("seccomp"); _exit(2); }
		char line[64]; int n = snprintf(line, sizeof line, "%ld %.1f\n", fd, t1 - t0);
		write(up[1], line, n);
		char ack; read(down[0], &ack, 1);
		close((int)fd); // the child drops its own copy: the gateway's dup keeps the filter's listener alive
		double call = now();
		write(up[1], &call, sizeof call);
		long r = syscall(SYS_syslog, 10, 0, 0); // SYSLOG_ACTION_SIZE_BUFFER
		printf("child: syslog returned %ld errno %d (never reached when the parent kills)\n", r, errno);
		_exit(0);
	}
	char line[64] = {0}; read(up[0], line, sizeof line - 1);
	int child_fd; double install_us; sscanf(line, "%d %lf", &child_fd, &install_us);
	double g0 = now();
	int pidfd = syscall(SYS_pidfd_open, pid, 0);
	int listener = syscall(SYS_pidfd_getfd, pidfd, child_fd, 0);
	double g1 = now();
	if (listener < 0) { perror("pidfd_getfd"); return 1; }
	char link[128] = {0}, path[64]; snprintf(path, sizeof path, "/proc/self/fd/%d", listener);
	readlink(path, link, sizeof link - 1);
	write(down[1], "k", 1);
	double call; read(up[0], &call, sizeof call);
	struct seccomp_notif notif; memset(&notif, 0, sizeof notif);
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &notif) != 0) { perror("NOTIF_RECV"); return 1; }
	double got = now();
	kill(pid, SIGSYS); // SIG_DFL in the child: dies by SIGSYS, like the trap
	int status; waitpid(pid, &status, 0);
	printf("seccomp(NEW_LISTENER|TSYNC|TSYNC_ESRCH) %.1f us; pidfd_open+getfd %.1f us -> %s\n", install_us, g1 - g0, link);
	printf("notification: pid %d nr %d (syslog=%d) arch %#x, %.1f us after the call\n", notif.pid, notif.data.nr, SYS_syslog, notif.data.arch, got - call);
	printf("child: signaled=%d sig=%d\n", WIFSIGNALED(status), WIFSIGNALED(status) ? WTERMSIG(status) : -1);
	return 0;
}
