package lockdown

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	fdDir         = "/proc/self/fd"
	direntBufSize = 4096
)

// refuseOpenFiles fails if any open descriptor (but the one reading /proc/self/fd) refers
// to a directory, or if one above the channels (0..lastChannel) refers to a regular file, a
// socket or a block device. A directory fd leads out of any chroot (openat, fchdir); a file
// or socket the host left open (an inherited database handle, the Go runtime's own cgroup
// files) would hand the sandbox something from outside the jail. Character devices, pipes
// and anonymous inodes (eventfd, epoll) are the interpreter's own plumbing.
func refuseOpenFiles(lastChannel int) (err error) {
	dir, err := unix.Open(fdDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", fdDir, err)
	}
	defer func() {
		if cerr := unix.Close(dir); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", fdDir, cerr)
		}
	}()
	buf := make([]byte, direntBufSize)
	for {
		n, err := unix.Getdents(dir, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("getdents %s: %w", fdDir, err)
		}
		if n == 0 {
			return nil
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			fd, err := strconv.Atoi(name)
			if err != nil {
				return fmt.Errorf("unexpected entry %q in %s", name, fdDir)
			}
			if fd == dir {
				continue
			}
			if err := refuseOpenFile(fd, fd > lastChannel); err != nil {
				return err
			}
		}
	}
}

func refuseOpenFile(fd int, beyondChannels bool) error {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	if errors.Is(err, unix.EBADF) {
		return nil // closed since it was listed
	}
	if err != nil {
		return fmt.Errorf("fstat fd %d: %w", fd, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fmt.Errorf("fd %d is an open directory", fd)
	case unix.S_IFREG, unix.S_IFSOCK, unix.S_IFBLK:
		if beyondChannels {
			return fmt.Errorf("fd %d is an open file or socket from outside the jail", fd)
		}
	}
	return nil
}

// limitResources forbids core dumps and, when maxThreads > 0, caps the processes and
// threads of the (unique) sandbox uid: the thread bomb limit when cgroups are missing.
func limitResources(maxThreads int) error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("RLIMIT_CORE: %w", err)
	}
	if maxThreads > 0 {
		limit := unix.Rlimit{Cur: uint64(maxThreads), Max: uint64(maxThreads)}
		if err := unix.Setrlimit(unix.RLIMIT_NPROC, &limit); err != nil {
			return fmt.Errorf("RLIMIT_NPROC: %w", err)
		}
	}
	return nil
}

// enterJail makes jail the root of every thread (they share one fs_struct) and moves there.
func enterJail(jail string) error {
	if err := unix.Chroot(jail); err != nil {
		return fmt.Errorf("chroot %s: %w", jail, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// dropPrivileges clears the supplementary groups and sets real, effective and saved ids on
// every thread. With cgo the syscall package calls glibc, whose setxid broadcast runs the
// call on every thread of the process, not only Go's; the tests check it with C threads.
func dropPrivileges(uid, gid int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("setresgid %d: %w", gid, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("setresuid %d: %w", uid, err)
	}
	return verifyPrivileges(uid, gid)
}

// verifyPrivileges checks the ids of this thread and that root cannot be taken back.
func verifyPrivileges(uid, gid int) error {
	ruid, euid, suid := unix.Getresuid()
	rgid, egid, sgid := unix.Getresgid()
	if ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid {
		return fmt.Errorf("ids are %d/%d/%d:%d/%d/%d after the change", ruid, euid, suid, rgid, egid, sgid)
	}
	groups, err := unix.Getgroups()
	if err != nil {
		return fmt.Errorf("getgroups: %w", err)
	}
	if len(groups) != 0 {
		return fmt.Errorf("supplementary groups %v remain", groups)
	}
	// A raw setuid on this thread only: glibc's setuid would broadcast a success.
	if _, _, errno := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0); errno == 0 {
		return errors.New("setuid(0) succeeded after the change")
	}
	return nil
}

// setProcessFlags: SIGKILL when the parent dies (set after the credential change, which
// clears it), no core dumps and no ptrace by the same uid, no new privileges on exec.
func setProcessFlags(parent int) error {
	flags := []struct {
		name   string
		option int
		value  uintptr
	}{
		{"PR_SET_PDEATHSIG", unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL)},
		{"PR_SET_DUMPABLE", unix.PR_SET_DUMPABLE, 0},
		{"PR_SET_NO_NEW_PRIVS", unix.PR_SET_NO_NEW_PRIVS, 1},
	}
	for _, f := range flags {
		if err := unix.Prctl(f.option, f.value, 0, 0, 0); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	// A parent that died before PDEATHSIG was set would never send it.
	if now := unix.Getppid(); now != parent {
		return fmt.Errorf("the parent %d exited (parent is now %d)", parent, now)
	}
	return nil
}
