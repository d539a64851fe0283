// Build and run as root: gcc -o /tmp/audit_log audit_log.c && /tmp/audit_log && dmesg | grep type=1326 | tail -2
// Probe: does a seccomp kill or a logged trap reach the kernel log here (option b)?
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
	for (int mode = 0; mode < 2; mode++) {
		pid_t pid = fork();
		if (pid == 0) {
			struct sock_filter f[] = {
				BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
				BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_syslog, 0, 1),
				BPF_STMT(BPF_RET | BPF_K, mode ? SECCOMP_RET_KILL_PROCESS : SECCOMP_RET_TRAP),
				BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			};
			struct sock_fprog prog = { .len = 4, .filter = f };
			prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
			if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, &prog)) { perror("seccomp"); _exit(2); }
			syscall(SYS_syslog, 10, 0, 0);
			_exit(0);
		}
		int st; waitpid(pid, &st, 0);
		printf("%s: pid %d signaled=%d sig=%d\n", mode ? "kill_process" : "trap+FLAG_LOG", pid, WIFSIGNALED(st), WTERMSIG(st));
	}
	return 0;
}
