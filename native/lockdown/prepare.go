package lockdown

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// plan is what the steps need, computed before anything changes.
type plan struct {
	filter []unix.SockFilter
	parent int // the parent pid, to notice a parent that died before PDEATHSIG
}

//go:generate go run fngw/native/cmd/genfilters .

// template is one variant of the filter as cmd/genfilters wrote it from the policy (in
// filters_<goarch>.go): the instructions, and those whose k is the locked process's own pid.
// A library that builds its filter from the policy in every process (forked children load
// it after the fork) spent ~1 ms of CPU on it; copying a template costs microseconds.
type template struct {
	pid  []int
	code []uint64
}

// filter is the template with pid in place, as the kernel takes it.
func (t template) filter(pid uint32) []unix.SockFilter {
	f := make([]unix.SockFilter, len(t.code))
	for i, c := range t.code {
		f[i] = unix.SockFilter{Code: uint16(c >> 48), Jt: uint8(c >> 40), Jf: uint8(c >> 32), K: uint32(c)}
	}
	for _, i := range t.pid {
		f[i].K = pid
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

	network, notify := 0, 0
	if r.Flags&FlagNetwork != 0 {
		network = 1
	}
	if r.ListenerFD > 0 {
		notify = 1
	}
	return plan{filter: generated[notify][network].filter(uint32(unix.Getpid())), parent: unix.Getppid()}, nil
}
