#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cthreads.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t released_cond = PTHREAD_COND_INITIALIZER;
static int released;
static pthread_t threads[CTHREADS_MAX];
static cthreads_ids results[CTHREADS_MAX];
static int started;

// record asks the kernel about the calling thread only: raw system calls, no glibc cache.
static void record(cthreads_ids *ids) {
	ids->uid = syscall(SYS_getuid);
	ids->euid = syscall(SYS_geteuid);
	ids->gid = syscall(SYS_getgid);
	ids->egid = syscall(SYS_getegid);
	ids->no_new_privs = syscall(SYS_prctl, PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	ids->seccomp = syscall(SYS_prctl, PR_GET_SECCOMP, 0, 0, 0, 0);
}

static void *waiter(void *arg) {
	cthreads_ids *ids = arg;
	pthread_mutex_lock(&mu);
	while (!released) {
		pthread_cond_wait(&released_cond, &mu);
	}
	pthread_mutex_unlock(&mu);
	record(ids);
	return NULL;
}

int cthreads_start(int n) {
	if (n < 0 || n > CTHREADS_MAX) {
		return EINVAL;
	}
	for (started = 0; started < n; started++) {
		int err = pthread_create(&threads[started], NULL, waiter, &results[started]);
		if (err != 0) {
			return err;
		}
	}
	return 0;
}

int cthreads_report(cthreads_ids *out, int n) {
	if (n != started) {
		return EINVAL;
	}
	pthread_mutex_lock(&mu);
	released = 1;
	pthread_cond_broadcast(&released_cond);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < n; i++) {
		int err = pthread_join(threads[i], NULL);
		if (err != 0) {
			return err;
		}
		out[i] = results[i];
	}
	return 0;
}

static void *recorder(void *arg) {
	record(arg);
	return NULL;
}

int cthreads_spawn(cthreads_ids *out) {
	pthread_t t;
	int err = pthread_create(&t, NULL, recorder, out);
	if (err != 0) {
		return err;
	}
	return pthread_join(t, NULL);
}

static void *caller(void *arg) {
	syscall((long)(intptr_t)arg);
	return NULL;
}

int cthreads_syscall_in_thread(long nr) {
	pthread_t t;
	int err = pthread_create(&t, NULL, caller, (void *)(intptr_t)nr);
	if (err != 0) {
		return err;
	}
	return pthread_join(t, NULL);
}
