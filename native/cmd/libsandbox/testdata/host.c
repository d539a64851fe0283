// A C host for the c-shared library, like an interpreter: threads of its own, dlopen,
// then the lock-down call, then what user code would try. Prints "name=value" lines.
// usage: host <libsandbox.so> <jail> <uid> <gid> <flags> <mode: probe|forbidden>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libsandbox.h"

enum { THREADS = 4, REPORT_FD = 3 };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static int released;

static void *waiter(void *arg) {
	long *uid = arg;
	pthread_mutex_lock(&mu);
	while (!released) {
		pthread_cond_wait(&go, &mu);
	}
	pthread_mutex_unlock(&mu);
	*uid = syscall(SYS_getuid); // this thread's own credentials
	return NULL;
}

static void *spawned(void *arg) {
	*(long *)arg = syscall(SYS_getuid);
	return NULL;
}

static const char *errname(long rc) {
	return rc == 0 ? "ok" : errno == EPERM ? "EPERM" : errno == ENOSYS ? "ENOSYS" : strerror(errno);
}

int main(int argc, char **argv) {
	if (argc != 7) {
		fprintf(stderr, "usage: host lib jail uid gid flags mode\n");
		return 2;
	}
	pthread_t threads[THREADS];
	long uids[THREADS];
	for (int i = 0; i < THREADS; i++) {
		pthread_create(&threads[i], NULL, waiter, &uids[i]);
	}
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (lib == NULL) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	__typeof__(SandboxReady) *ready = (int (*)(void))dlsym(lib, "SandboxReady");
	if (ready == NULL || ready() != 0) {
		fprintf(stderr, "SandboxReady missing or not 0\n");
		return 2;
	}
	int (*lock)(char *, int, int, unsigned int, int, int) = (int (*)(char *, int, int, unsigned int, int, int))dlsym(lib, "SandboxSeccomp");
	// The header declares it; the declaration and the symbol must agree.
	__typeof__(SandboxSeccomp) *declared = lock;
	int rc = declared(argv[2], atoi(argv[3]), atoi(argv[4]), (unsigned int)atoi(argv[5]), REPORT_FD, 32);
	printf("rc=%d\n", rc);
	fflush(stdout);
	if (strcmp(argv[6], "forbidden") == 0) {
		syscall(SYS_syslog, 10, 0, 0);
		printf("survived\n");
		return 0;
	}
	pthread_mutex_lock(&mu);
	released = 1;
	pthread_cond_broadcast(&go);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(threads[i], NULL);
		printf("thread_uid_%d=%ld\n", i, uids[i]);
	}
	pthread_t t;
	long uid = -1;
	int err = pthread_create(&t, NULL, spawned, &uid);
	if (err == 0) {
		pthread_join(t, NULL);
	}
	printf("new_thread=%s\nnew_thread_uid=%ld\n", err == 0 ? "ok" : strerror(err), uid);
	pid_t pid = fork();
	if (pid == 0) {
		_exit(0);
	}
	printf("fork=%s\n", errname(pid > 0 ? 0 : -1));
	long s = socket(AF_UNIX, SOCK_STREAM, 0);
	printf("socket_unix=%s\n", errname(s >= 0 ? 0 : -1));
	s = socket(AF_INET, SOCK_STREAM, 0);
	printf("socket_inet=%s\n", errname(s >= 0 ? 0 : -1));
	printf("setuid0=%s\n", errname(syscall(SYS_setuid, 0)));
	printf("getuid=%d\n", (int)getuid());
	return 0;
}
