package lockdown

/*
#include <stdlib.h>
#include "sigsys.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"fngw/native/seccomp"
	"golang.org/x/sys/unix"
)

// fillSyscallNames gives the SIGSYS reporter the name of every system call of this arch.
// The C strings stay allocated for the life of the process: the handler reads them.
func fillSyscallNames() error {
	if C.SYSCALL_NAME_SLOTS != seccomp.MaxSyscall {
		return fmt.Errorf("the reporter has %d name slots, the tables need %d", C.SYSCALL_NAME_SLOTS, seccomp.MaxSyscall)
	}
	arch, err := seccomp.Native()
	if err != nil {
		return err
	}
	for name, nr := range arch.Syscalls {
		if C.lockdown_set_syscall_name(C.int(nr), C.CString(name)) != 0 {
			return fmt.Errorf("syscall %s = %d does not fit the name table", name, nr)
		}
	}
	return nil
}

// installFilter installs the SIGSYS reporter and then the filter on every thread at once
// (TSYNC). A positive return of seccomp is the id of a thread that could not be synchronised.
func installFilter(p plan, reportFD int) error {
	if errno := C.lockdown_install_sigsys(C.int(reportFD), C.long(seccomp.DieSyscall)); errno != 0 {
		return fmt.Errorf("sigaction SIGSYS: %w", syscall.Errno(errno))
	}
	prog := unix.SockFprog{Len: uint16(len(p.filter)), Filter: &p.filter[0]}
	tid, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(p.filter)
	if errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	if tid != 0 {
		return fmt.Errorf("thread %d could not be synchronised", tid)
	}
	return nil
}
