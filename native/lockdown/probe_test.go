package lockdown

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"fngw/native/internal/cthreads"
	"golang.org/x/sys/unix"
)

// probes is what the locked child observed, printed as JSON for the parent.
type probes struct {
	Results map[string]string // probe name: "ok" or the errno's name
	Threads []cthreads.IDs    // every thread asked, C and Go, before and after the lock
}

// lockAndProbe starts C and Go threads, locks down, then tries what the filter decides.
func lockAndProbe(r Request) {
	// PR_SET_PDEATHSIG is a property of the thread that locked down: probe from that one.
	runtime.LockOSThread()
	if err := cthreads.Start(preThreads); err != nil {
		panic(err)
	}
	release := make(chan struct{})
	goIDs := make(chan cthreads.IDs, 2*preThreads)
	var wg sync.WaitGroup
	for range preThreads {
		wg.Add(1)
		go func() { // a Go thread that exists before the lock
			defer wg.Done()
			runtime.LockOSThread()
			<-release
			goIDs <- goThreadIDs()
		}()
	}
	time.Sleep(10 * time.Millisecond) // let the Go threads start and lock
	Enforce(r)

	p := probes{Results: map[string]string{}}
	close(release)
	wg.Wait()
	for range preThreads {
		p.Threads = append(p.Threads, <-goIDs)
	}
	cIDs, err := cthreads.Report(preThreads)
	if err != nil {
		panic(err)
	}
	p.Threads = append(p.Threads, cIDs...)
	spawned, err := cthreads.Spawn() // a C thread started after the lock: clone3 → clone
	if err != nil {
		panic(err)
	}
	p.Threads = append(p.Threads, spawned)
	for range preThreads { // goroutines locked to new Go threads after the lock
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			goIDs <- goThreadIDs()
			time.Sleep(5 * time.Millisecond)
		}()
	}
	wg.Wait()
	for range preThreads {
		p.Threads = append(p.Threads, <-goIDs)
	}
	probeCalls(p.Results)
	out, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
	os.Exit(0)
}

// goThreadIDs asks the kernel about the calling Go thread.
func goThreadIDs() cthreads.IDs {
	raw := func(nr uintptr) int {
		r, _, _ := unix.RawSyscall(nr, 0, 0, 0)
		return int(r)
	}
	nnp, _, _ := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_GET_NO_NEW_PRIVS, 0, 0)
	mode, _, _ := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_GET_SECCOMP, 0, 0)
	return cthreads.IDs{UID: raw(unix.SYS_GETUID), EUID: raw(unix.SYS_GETEUID), GID: raw(unix.SYS_GETGID),
		EGID: raw(unix.SYS_GETEGID), NoNewPrivs: int(nnp), Seccomp: int(mode)}
}

// probeCalls records what each attempt returned.
func probeCalls(res map[string]string) {
	record := func(name string, err error) {
		var errno syscall.Errno
		switch {
		case err == nil:
			res[name] = "ok"
		case errors.As(err, &errno):
			res[name] = unix.ErrnoName(errno)
		default:
			res[name] = err.Error()
		}
	}
	record("fork", forkLike(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0))
	var args [clone3ArgsSize]byte
	record("clone3", forkLike(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), clone3ArgsSize))
	record("clone_newuser", forkLike(unix.SYS_CLONE, cloneThreadBit|unix.CLONE_NEWUSER, 0))
	record("execve", unix.Exec("/bin/true", []string{"true"}, nil))
	record("socket_unix", socket(unix.AF_UNIX))
	record("socket_inet", socket(unix.AF_INET))
	record("socketpair", func() error { _, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0); return err }())
	record("socketpair_dgram", func() error { _, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0); return err }())
	record("ptrace", errnoOf(unix.RawSyscall(unix.SYS_PTRACE, ptraceTraceme, 0, 0)))
	record("kill_init", unix.Kill(1, 0))
	record("kill_self", unix.Kill(unix.Getpid(), 0))
	record("setuid0", errnoOf(unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)))
	record("chroot", unix.Chroot("/"))
	record("mount", unix.Mount("none", "/", "tmpfs", 0, ""))
	record("unshare", unix.Unshare(unix.CLONE_NEWUSER))
	var act, old [sigactionWords]uint64 // struct kernel_sigaction; all zero: SIG_DFL
	record("sigaction_sigsys", errnoOf(unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGSYS),
		uintptr(unsafe.Pointer(&act)), 0, sigsetSize, 0, 0)))
	record("sigaction_sigsys_query", errnoOf(unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGSYS),
		0, uintptr(unsafe.Pointer(&old)), sigsetSize, 0, 0)))
	record("ioctl_tiocsti", errnoOf(unix.RawSyscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, 0)))
	record("ioctl_fionread", func() error { _, err := unix.IoctlGetInt(1, ioctlFIONREAD); return err }())
	record("jail_root", func() error {
		if _, err := os.Stat("/" + jailMarker); err != nil {
			return err
		}
		return nil
	}())
	record("cwd", func() error {
		if wd, err := os.Getwd(); err != nil || wd != "/" {
			return fmt.Errorf("cwd %q %v", wd, err)
		}
		return nil
	}())
	record("dumpable", prctlIs(unix.PR_GET_DUMPABLE, 0))
	record("pdeathsig", func() error {
		var sig int32
		if err := unix.Prctl(unix.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0, 0, 0); err != nil {
			return err
		}
		if sig != int32(unix.SIGKILL) {
			return fmt.Errorf("pdeathsig %d", sig)
		}
		return nil
	}())
	record("rlimits", func() error {
		var core, nproc unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_CORE, &core); err != nil {
			return err
		}
		if err := unix.Getrlimit(unix.RLIMIT_NPROC, &nproc); err != nil {
			return err
		}
		if core.Max != 0 || nproc.Cur != testMaxThreads {
			return fmt.Errorf("core %d, nproc %d", core.Max, nproc.Cur)
		}
		return nil
	}())
	record("go_runtime", exerciseRuntime())
}

// forkLike makes a call that would create a process; if the filter let it through, the
// new process leaves at once.
func forkLike(nr, a1, a2 uintptr) error {
	pid, _, errno := unix.RawSyscall6(nr, a1, a2, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	if pid == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return nil
}

func socket(family int) error {
	fd, err := unix.Socket(family, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func errnoOf(_, _ uintptr, errno syscall.Errno) error {
	if errno != 0 {
		return errno
	}
	return nil
}

func prctlIs(option int, want uintptr) error {
	got, _, errno := unix.RawSyscall(unix.SYS_PRCTL, uintptr(option), 0, 0)
	if errno != 0 {
		return errno
	}
	if got != want {
		return fmt.Errorf("prctl %d = %d, want %d", option, got, want)
	}
	return nil
}

// exerciseRuntime makes the Go runtime do what it does in the background: garbage
// collection, timers, many goroutines and preemption of a busy one (tgkill + SIGURG).
func exerciseRuntime() error {
	var wg sync.WaitGroup
	sums := make([]int, 8)
	for i := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Millisecond)
			for time.Now().Before(deadline) {
				sums[i] += len(strconv.Itoa(sums[i]))
			}
		}()
	}
	wg.Wait()
	runtime.GC()
	var buf bytes.Buffer
	for i := range 1000 {
		buf.WriteString(strconv.Itoa(i))
	}
	time.Sleep(time.Millisecond)
	if buf.Len() == 0 {
		return errors.New("no work done")
	}
	return nil
}
