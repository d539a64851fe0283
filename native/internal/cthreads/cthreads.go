// Package cthreads starts C threads (pthreads the Go runtime does not know) for the
// lock-down tests: they report what the kernel says about their own credentials and
// seccomp state, proving that a change reached threads outside Go.
package cthreads

/*
#cgo LDFLAGS: -lpthread
#include "cthreads.h"
*/
import "C"

import (
	"fmt"
	"syscall"
)

// IDs is what one thread reports about itself.
type IDs struct {
	UID, EUID, GID, EGID int
	NoNewPrivs           int // 1 when no_new_privs is set on the thread
	Seccomp              int // 2 when a seccomp filter is on the thread
}

func fromC(c C.cthreads_ids) IDs {
	return IDs{UID: int(c.uid), EUID: int(c.euid), GID: int(c.gid), EGID: int(c.egid),
		NoNewPrivs: int(c.no_new_privs), Seccomp: int(c.seccomp)}
}

// Start starts n C threads that wait until Report.
func Start(n int) error {
	if errno := C.cthreads_start(C.int(n)); errno != 0 {
		return fmt.Errorf("start %d threads: %w", n, syscall.Errno(errno))
	}
	return nil
}

// Report releases the n threads of Start and returns what each saw.
func Report(n int) ([]IDs, error) {
	out := make([]C.cthreads_ids, n)
	if n == 0 {
		return nil, nil
	}
	if errno := C.cthreads_report(&out[0], C.int(n)); errno != 0 {
		return nil, fmt.Errorf("report: %w", syscall.Errno(errno))
	}
	ids := make([]IDs, n)
	for i, c := range out {
		ids[i] = fromC(c)
	}
	return ids, nil
}

// Spawn starts a new C thread now and returns what it saw.
func Spawn() (IDs, error) {
	var out C.cthreads_ids
	if errno := C.cthreads_spawn(&out); errno != 0 {
		return IDs{}, fmt.Errorf("spawn: %w", syscall.Errno(errno))
	}
	return fromC(out), nil
}

// SyscallInThread makes system call nr on a new C thread.
func SyscallInThread(nr int) error {
	if errno := C.cthreads_syscall_in_thread(C.long(nr)); errno != 0 {
		return fmt.Errorf("thread for syscall %d: %w", nr, syscall.Errno(errno))
	}
	return nil
}
