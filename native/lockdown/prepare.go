package lockdown

import (
	"fmt"
	"os"
	"path/filepath"

	"fngw/native/seccomp"
	"golang.org/x/sys/unix"
)

// plan is what the steps need, computed before anything changes.
type plan struct {
	filter []unix.SockFilter
	parent int // the parent pid, to notice a parent that died before PDEATHSIG
}

// filters are both variants of this process's filter. They are built while the library
// loads: in a c-shared library package init runs on the Go runtime's own thread, in
// parallel with the host, and the lock-down call is on every invocation's critical path.
type filters struct {
	pid int
	// [listener][network]: [0] without, [1] with.
	variants [2][2][]unix.SockFilter
	err      error
}

var prebuilt = buildFilters(unix.Getpid())

func init() {
	// The SIGSYS reporter's name table, filled once (the handler is installed later).
	if prebuilt.err == nil {
		prebuilt.err = fillSyscallNames()
	}
}

// buildFilters builds the filter for pid, with and without a listener, with and without network.
func buildFilters(pid int) filters {
	f := filters{pid: pid}
	arch, err := seccomp.Native()
	if err != nil {
		f.err = err
		return f
	}
	for i, notify := range []bool{false, true} {
		for j, network := range []bool{false, true} {
			prog, err := seccomp.BuildPolicy(arch, seccomp.Options{Network: network, PID: uint32(pid), Notify: notify})
			if err != nil {
				f.err = fmt.Errorf("filter: %w", err)
				return f
			}
			filter := make([]unix.SockFilter, len(prog.Instructions))
			for k, ins := range prog.Instructions {
				filter[k] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
			}
			f.variants[i][j] = filter
		}
	}
	return f
}

// prepare validates r and picks the filter for this process.
func prepare(r Request) (plan, error) {
	if r.UID <= 0 || r.GID <= 0 {
		return plan{}, fmt.Errorf("uid and gid must be > 0 (got %d, %d)", r.UID, r.GID)
	}
	if r.Flags&^knownFlags != 0 {
		return plan{}, fmt.Errorf("unknown flags %#x", r.Flags&^knownFlags)
	}
	if r.MaxThreads < 0 {
		return plan{}, fmt.Errorf("max_threads must be >= 0 (got %d)", r.MaxThreads)
	}
	if !filepath.IsAbs(r.Jail) {
		return plan{}, fmt.Errorf("jail %q is not an absolute path", r.Jail)
	}
	info, err := os.Stat(r.Jail)
	if err != nil {
		return plan{}, fmt.Errorf("jail: %w", err)
	}
	if !info.IsDir() {
		return plan{}, fmt.Errorf("jail %s is not a directory", r.Jail)
	}

	built := prebuilt
	if pid := unix.Getpid(); pid != built.pid { // the host forked after loading the library
		built = buildFilters(pid)
	}
	if built.err != nil {
		return plan{}, built.err
	}
	network, notify := 0, 0
	if r.Flags&FlagNetwork != 0 {
		network = 1
	}
	if r.ListenerFD > 0 {
		notify = 1
	}
	return plan{filter: built.variants[notify][network], parent: unix.Getppid()}, nil
}
