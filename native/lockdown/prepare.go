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
	names  map[uint32]string // the arch's system call names, for the SIGSYS reporter
	parent int               // the parent pid, to notice a parent that died before PDEATHSIG
}

// prepare validates r and builds the filter for this process.
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

	arch, err := seccomp.Native()
	if err != nil {
		return plan{}, err
	}
	opts := seccomp.Options{Network: r.Flags&FlagNetwork != 0, PID: uint32(unix.Getpid())}
	prog, err := seccomp.BuildPolicy(arch, opts)
	if err != nil {
		return plan{}, fmt.Errorf("filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(prog.Instructions))
	for i, ins := range prog.Instructions {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return plan{filter: filter, names: arch.Names(), parent: unix.Getppid()}, nil
}
