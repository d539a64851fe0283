// The SIGSYS reporter. Everything here runs in a signal handler: no allocation, no stdio,
// no locks; only write() and syscall().
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sigsys.h"

// SYS_SECCOMP is the si_code of a SIGSYS sent by a seccomp RET_TRAP.
#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

enum {
	REPORT_SIZE = 192,       // the line: 56 fixed bytes, a number, a name under 64 bytes
	EXIT_BY_SIGSYS = 128 + SIGSYS,
};

static const char *syscall_names[SYSCALL_NAME_SLOTS];
static int report_fd = -1;
static long die_nr = -1;

int lockdown_set_syscall_name(int nr, const char *name) {
	if (nr < 0 || nr >= SYSCALL_NAME_SLOTS) {
		return -1;
	}
	syscall_names[nr] = name;
	return 0;
}

// append copies s into buf at *len, truncating at REPORT_SIZE.
static void append(char *buf, size_t *len, const char *s) {
	while (*s != '\0' && *len < REPORT_SIZE) {
		buf[(*len)++] = *s++;
	}
}

static void append_int(char *buf, size_t *len, int n) {
	char digits[16];
	int i = 0;
	unsigned int u = n < 0 ? 0u - (unsigned int)n : (unsigned int)n;
	do {
		digits[i++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (n < 0) {
		digits[i++] = '-';
	}
	while (i > 0 && *len < REPORT_SIZE) {
		buf[(*len)++] = digits[--i];
	}
}

static void write_all(int fd, const char *buf, size_t len) {
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return; // best effort: the signal still tells the gateway what happened
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void on_sigsys(int sig, siginfo_t *info, void *context) {
	(void)sig;
	(void)context;
	int saved = errno;
	if (report_fd >= 0 && info->si_code == SYS_SECCOMP) {
		char line[REPORT_SIZE];
		size_t len = 0;
		int nr = info->si_syscall;
		// Names are [a-z0-9_]: nothing to escape in JSON.
		const char *name = nr >= 0 && nr < SYSCALL_NAME_SLOTS && syscall_names[nr] ? syscall_names[nr] : "";
		append(line, &len, "{\"kind\":\"forbidden\",\"syscall\":");
		append_int(line, &len, nr);
		append(line, &len, ",\"name\":\"");
		append(line, &len, name);
		append(line, &len, "\"}\n");
		write_all(report_fd, line, len);
	}
	// SIGSYS is blocked in its own handler (no SA_NODEFER): a trapped call now makes the
	// kernel force SIG_DFL, and the whole process dies by SIGSYS.
	syscall(die_nr);
	syscall(SYS_exit_group, EXIT_BY_SIGSYS);
	errno = saved;
}

int lockdown_install_sigsys(int fd, long nr) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigsys;
	// SA_ONSTACK: on a Go thread the handler must run on the signal stack Go set up.
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigfillset(&sa.sa_mask);
	report_fd = fd;
	die_nr = nr;
	if (sigaction(SIGSYS, &sa, NULL) != 0) {
		return errno;
	}
	return 0;
}
