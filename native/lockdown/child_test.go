package lockdown

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"fngw/native/internal/cthreads"
	"golang.org/x/sys/unix"
)

// The tests re-execute the test binary: a lock-down (or its failure) is for good, so each
// runs in a child process chosen by these environment variables.
const (
	envMode = "LOCKDOWN_TEST_CHILD"
	envJail = "LOCKDOWN_TEST_JAIL"
	envNet  = "LOCKDOWN_TEST_NETWORK"
)

const (
	testUID         = 64321 // nobody else's: RLIMIT_NPROC counts the uid's tasks
	testGID         = 64322
	testMaxThreads  = 64
	childReportFD   = 3 // cmd.ExtraFiles[0]
	childListenerFD = 4 // cmd.ExtraFiles[1], in the "listener" mode
	// goDebug keeps the Go runtime from holding its cgroup CPU files open (container-aware
	// GOMAXPROCS): the lock-down refuses open files, as it must for a host that loads the
	// library, and the gateway sets the same for its sandboxes.
	goDebug        = "GODEBUG=containermaxprocs=0,updatemaxprocs=0"
	jailMarker     = "inside-the-jail"
	preThreads     = 3 // C threads and locked Go threads started before the lock
	clone3ArgsSize = 88
	ptraceTraceme  = 0
	syslogBufSize  = 10 // SYSLOG_ACTION_SIZE_BUFFER
	cloneThreadBit = 0x10000
	ioctlFIONREAD  = 0x541b
	sigactionWords = 4 // handler, flags, restorer, mask: 32 bytes on x86_64 and aarch64
	sigsetSize     = 8
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envMode); mode != "" {
		runChild(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childRequest is the request of a child, from its environment.
func childRequest() Request {
	r := Request{Jail: os.Getenv(envJail), UID: testUID, GID: testGID, ReportFD: childReportFD, MaxThreads: testMaxThreads}
	if os.Getenv(envNet) == "1" {
		r.Flags = FlagNetwork
	}
	return r
}

func runChild(mode string) {
	r := childRequest()
	switch mode {
	case "dirfd":
		dir, err := os.Open(r.Jail)
		if err != nil {
			panic(err)
		}
		Enforce(r)
		runtime.KeepAlive(dir)
	case "filefd":
		file, err := os.Open(r.Jail + "/" + jailMarker)
		if err != nil {
			panic(err)
		}
		Enforce(r)
		runtime.KeepAlive(file)
	case "uid0":
		r.UID = 0
		Enforce(r)
	case "gid0":
		r.GID = 0
		Enforce(r)
	case "missing-jail":
		r.Jail += "/missing"
		Enforce(r)
	case "relative-jail":
		r.Jail = "tmp"
		Enforce(r)
	case "file-jail":
		r.Jail += "/" + jailMarker
		Enforce(r)
	case "bad-flags":
		r.Flags = 1 << 1
		Enforce(r)
	case "lock":
		lockAndProbe(r)
	case "forbidden":
		Enforce(r)
		unix.RawSyscall(unix.SYS_SYSLOG, syslogBufSize, 0, 0)
	case "listener":
		r.ListenerFD = childListenerFD
		Enforce(r)
		_, _, closed := unix.RawSyscall(unix.SYS_FCNTL, childListenerFD, unix.F_GETFD, 0)
		_, _, refused := unix.RawSyscall(unix.SYS_SYSLOG, syslogBufSize, 0, 0)
		fmt.Printf("channel=%s syslog=%s\n", unix.ErrnoName(closed), unix.ErrnoName(refused))
	case "forbidden-thread":
		Enforce(r)
		if err := cthreads.SyscallInThread(unix.SYS_SYSLOG); err != nil {
			panic(err)
		}
	default:
		panic("unknown child mode " + mode)
	}
	fmt.Println("survived")
}

// child is a finished child process.
type child struct {
	stdout, stderr string
	report         string
	state          *os.ProcessState
}

// startChild runs the test binary in mode with a fresh jail and waits for it.
func startChild(t *testing.T, mode string, network bool) child {
	t.Helper()
	jail := t.TempDir()
	if err := os.Chmod(jail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jail+"/"+jailMarker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer reportR.Close()
	net := "0"
	if network {
		net = "1"
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envMode+"="+mode, envJail+"="+jail, envNet+"="+net, goDebug)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = []*os.File{reportW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := reportW.Close(); err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	if _, err := report.ReadFrom(reportR); err != nil {
		t.Fatal(err)
	}
	var exitErr *exec.ExitError
	if err := cmd.Wait(); err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	return child{stdout: stdout.String(), stderr: stderr.String(), report: report.String(), state: cmd.ProcessState}
}
