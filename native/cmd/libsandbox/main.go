// Command libsandbox is the sandbox library, built with -buildmode=c-shared. It exports
// SandboxSeccomp, the lock-down, and SandboxReady; the work is done by package lockdown (see
// native/README.md).
package main

import "C"

import "fngw/native/lockdown"

// SandboxSeccomp locks the calling process down, not only with seccomp despite its name (kept
// for compatibility with the prescripts): chroot into jail, uid and gid on every thread,
// no_new_privs, and the seccomp filter on every thread (flags bit 0: network). The call, its
// parameters and the report_fd frames are the protocol in prescripts/PROTOCOL.md.
// It returns 0 only when the lock is in place; on any failure it writes one
// {"kind":"lockdown_failed",...} line to report_fd and ends the process with status 125.
//
// This is SandboxLockdown without a listener: refused calls are answered in the kernel, and
// trapped ones named by the SIGSYS reporter on report_fd (the developer's runners use it).
//
//export SandboxSeccomp
func SandboxSeccomp(jail *C.char, uid, gid C.int, flags C.uint, reportFD, maxThreads C.int) C.int {
	return SandboxLockdown(jail, uid, gid, flags, reportFD, maxThreads, -1)
}

// SandboxLockdown is the whole lock-down; listener_fd, when positive, is a Unix socket the
// seccomp filter's listener is sent on before the call returns, so that every refused call
// is handed to the gateway, which names it (native/README.md, "Naming refused calls").
//
//export SandboxLockdown
func SandboxLockdown(jail *C.char, uid, gid C.int, flags C.uint, reportFD, maxThreads, listenerFD C.int) C.int {
	path := ""
	if jail != nil {
		path = C.GoString(jail)
	}
	lockdown.Enforce(lockdown.Request{
		Jail:       path,
		UID:        int(uid),
		GID:        int(gid),
		Flags:      uint32(flags),
		ReportFD:   int(reportFD),
		MaxThreads: int(maxThreads),
		ListenerFD: int(listenerFD),
	})
	return 0
}

func main() {}

// SandboxReady does nothing and returns 0, once the Go runtime has finished starting (it starts
// on a thread of its own when the library is loaded). A host calls it from its main thread while
// it waits for its invocation, so that the lock-down call later pays neither the runtime's start
// nor the binding of the calling thread to the runtime (about 0.5 ms of the call otherwise).
//
//export SandboxReady
func SandboxReady() C.int { return 0 }
