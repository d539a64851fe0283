package lockdown

/*
#include <stdlib.h>
#include "sigsys.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"fngw/native/seccomp"
	"golang.org/x/sys/unix"
)

// fillSyscallNames gives the SIGSYS reporter the name of every system call of this arch, once
// (only a lock-down without a listener installs the reporter). The C strings stay allocated for
// the life of the process: the handler reads them.
var fillSyscallNames = sync.OnceValue(func() error {
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
})

// installFilter installs the filter on every thread at once (TSYNC). Without a listener
// channel the SIGSYS reporter comes first; with one, the filter is created with a listener
// (TSYNC_ESRCH: a thread that cannot be synchronised fails the call with ESRCH, since the
// return value is the listener), which is sent on the channel and closed here.
func installFilter(p plan, r Request) error {
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_TSYNC)
	if r.ListenerFD <= 0 {
		if err := fillSyscallNames(); err != nil {
			return fmt.Errorf("the SIGSYS reporter's names: %w", err)
		}
		if errno := C.lockdown_install_sigsys(C.int(r.ReportFD), C.long(seccomp.DieSyscall)); errno != 0 {
			return fmt.Errorf("sigaction SIGSYS: %w", syscall.Errno(errno))
		}
	} else {
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | filterFlagTsyncEsrch
	}
	prog := unix.SockFprog{Len: uint16(len(p.filter)), Filter: &p.filter[0]}
	ret, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(p.filter)
	if errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	if r.ListenerFD <= 0 {
		if ret != 0 {
			return fmt.Errorf("thread %d could not be synchronised", ret)
		}
		return nil
	}
	return handOver(int(ret), r.ListenerFD)
}

// filterFlagTsyncEsrch is SECCOMP_FILTER_FLAG_TSYNC_ESRCH (Linux 5.7).
const filterFlagTsyncEsrch = 1 << 4

// handOver sends the listener on channel, then closes both: from here on only the receiver
// holds the listener. The calls it makes (sendmsg, close) are allowed by the filter.
func handOver(listener, channel int) error {
	rights := unix.UnixRights(listener)
	err := unix.Sendmsg(channel, []byte{'L'}, rights, nil, 0)
	for _, fd := range []int{listener, channel} {
		if cerr := unix.Close(fd); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("sending the listener: %w", err)
	}
	return nil
}
