// Test helper: C threads (pthreads, invisible to the Go runtime) that report the
// credentials and seccomp state the kernel gives them.
#ifndef CTHREADS_H
#define CTHREADS_H

typedef struct {
	long uid, euid, gid, egid;
	long no_new_privs; // prctl(PR_GET_NO_NEW_PRIVS)
	long seccomp;      // prctl(PR_GET_SECCOMP): 2 in filter mode
} cthreads_ids;

// cthreads_start starts n waiting threads (n <= CTHREADS_MAX). Returns 0 or an errno.
int cthreads_start(int n);
// cthreads_report releases the waiting threads, joins them and fills out[0..n-1].
int cthreads_report(cthreads_ids *out, int n);
// cthreads_spawn starts one more thread now, which fills *out; returns 0 or an errno.
int cthreads_spawn(cthreads_ids *out);
// cthreads_syscall_in_thread makes system call nr on a new thread; returns 0 or an errno
// of pthread_create (the call's own result is ignored).
int cthreads_syscall_in_thread(long nr);

#define CTHREADS_MAX 16

#endif
