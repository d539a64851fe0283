// Package lockdown locks the calling process into a jail for good: chroot, an unprivileged
// uid and gid on every thread, no_new_privs, and a seccomp filter synchronised to every
// thread. It fails closed: on any error it reports the failing step and ends the process.
package lockdown

import (
	"fmt"
	"runtime"
)

// FlagNetwork in Request.Flags allows outgoing IPv4 and IPv6 connections.
const FlagNetwork = 1 << 0

// knownFlags are the flag bits Request.Flags may have; any other bit is refused.
const knownFlags = FlagNetwork

// Request is what the caller asks for.
type Request struct {
	// Jail is the absolute path of the directory that becomes "/".
	Jail string
	// UID and GID are the unprivileged identity every thread takes (both > 0).
	UID, GID int
	// Flags is a set of Flag* bits.
	Flags uint32
	// ReportFD receives one JSON line when the lock-down fails or when the filter traps a
	// system call; negative for none. It is also the host's last channel: descriptors
	// 0..ReportFD (stdio, request, result) may be files or sockets, none above may.
	ReportFD int
	// MaxThreads, when positive, caps the uid's processes and threads (RLIMIT_NPROC).
	MaxThreads int
	// ListenerFD, when positive, is a Unix socket the filter's listener is sent on
	// (SCM_RIGHTS) before Enforce returns: every refused call then goes to whoever holds it (the
	// gateway), which names it and answers EPERM or kills the process. The descriptor and the
	// library's copy of the listener are closed, so nothing in the process can reach either.
	// Otherwise refused calls are answered in the kernel (EPERM) or trapped (the SIGSYS reporter
	// writes their name on ReportFD, where user code can write too).
	ListenerFD int
}

// Enforce locks the process down as r asks. If any step fails it writes
// {"kind":"lockdown_failed","message":"<step>: <error>"} to r.ReportFD and ends the whole
// process with exit status 125: it never returns without the lock in place.
func Enforce(r Request) {
	if err := apply(r); err != nil {
		fail(r.ReportFD, err)
	}
}

// lastChannel is the highest descriptor that may be a file or socket: stdio at least.
func lastChannel(r Request) int {
	return max(r.ReportFD, r.ListenerFD, 2)
}

// apply runs the steps in order; see native/README.md for why this order.
func apply(r Request) error {
	// prctl flags and the seccomp call act on the calling thread (TSYNC spreads the
	// filter and no_new_privs from it): keep every step on one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	p, err := prepare(r)
	if err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"open files", func() error { return refuseOpenFiles(lastChannel(r)) }},
		{"rlimits", func() error { return limitResources(r.MaxThreads) }},
		{"chroot", func() error { return enterJail(r.Jail) }},
		{"credentials", func() error { return dropPrivileges(r.UID, r.GID) }},
		{"prctl", func() error { return setProcessFlags(p.parent) }},
		{"seccomp", func() error { return installFilter(p, r) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}
